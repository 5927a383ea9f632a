"""HTTP: thin FastAPI handlers (`routes/`, one router per resource), their dependencies, admin auth and errors."""
