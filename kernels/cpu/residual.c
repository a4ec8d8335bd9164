/* Residual add: x[i] += y[i]. */
#include "kernels/kernels.h"

void residual_add(float *x, const float *y, int n) {
    for (int i = 0; i < n; i++)
        x[i] += y[i];
}
