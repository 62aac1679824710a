"""Sample vendor callbacks shipped with the package (Bizppurio delivery results)."""
