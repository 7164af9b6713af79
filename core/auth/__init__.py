"""Users, password hashing and role checks shared by every face (CLI, API, app)."""
