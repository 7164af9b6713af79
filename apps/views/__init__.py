"""The app's core pages, one module each. The folder is not called `pages/`: Streamlit would also serve every
file of a folder by that name beside the main script as a page of its own, around the checks of apps/navigation.py."""
