"""One module per algorithm: its functional form and its optimizer class."""
