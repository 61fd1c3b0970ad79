"""A real Django project for the Django integration's tests (settings, tasks, URLs)."""
