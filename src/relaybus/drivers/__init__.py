"""Transport drivers, one sub-package each; they never import each other or the API layer."""
