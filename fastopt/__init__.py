"""fastopt (temporary package marker on the lbfgs branch; main provides the real one)."""
