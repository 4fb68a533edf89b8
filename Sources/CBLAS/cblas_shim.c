#include "cblas_shim.h"

const char *mpo_openblas_corename(void) { return openblas_get_corename(); }
