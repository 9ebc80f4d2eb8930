include "_lbfgs.pxi"
