"""Views of a result for people: the terminal and the self-contained HTML page."""
