"""Streamlit app: one entry (main.py), one page per role, plus operations."""
