"""nginx templates (jinja2): what hookshift inserts; rendered by mirror.render."""
