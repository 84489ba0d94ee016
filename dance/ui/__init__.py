"""The Streamlit front end: cached loaders, shared widgets and the pages (the only code that imports streamlit)."""
