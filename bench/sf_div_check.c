/* sf_div_check.c — exhaustive check of FO_DIV_BY_INV (csrc/fo_common.h): for every float bit pattern x,
 * x / c == (float)((double)x * (1 / (double)c)) bitwise, for each sample constant c: bc2 = 1 - beta2^(k+1) of the
 * first steps of beta2 = 0.999, 0.99, 0.95, the ends of [FLT_MIN, 1], and `count` log-uniform ones (seed `seed`).
 * Exits 1 on any mismatch. Not part of the package (bench/sf_micro.sh check).
 *   sf_div_check [seed count]  */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <math.h>
#include <float.h>
static uint64_t check(float c) {
    const double inv = 1.0 / (double)c;
    uint64_t bad = 0;
    for (uint64_t hi = 0; hi < (1ull << 32); hi += 1u << 16) {
        float x[1 << 16], a[1 << 16], b[1 << 16];
        for (uint32_t i = 0; i < (1u << 16); ++i) { uint32_t u = (uint32_t)(hi + i); memcpy(&x[i], &u, 4); }
        for (uint32_t i = 0; i < (1u << 16); ++i) a[i] = x[i] / c;
        for (uint32_t i = 0; i < (1u << 16); ++i) b[i] = (float)((double)x[i] * inv);
        if (memcmp(a, b, sizeof a) != 0)
            for (uint32_t i = 0; i < (1u << 16); ++i) if (memcmp(&a[i], &b[i], 4)) {
                if (bad < 5) printf("  MISMATCH c=%a x=%a: %a vs %a\n", c, x[i], a[i], b[i]);
                ++bad;
            }
    }
    return bad;
}
int main(int argc, char **argv) {
    float cs[200]; int n = 0;
    for (int k = 0; k < 20; ++k) cs[n++] = (float)(1 - pow(0.999, k + 1));
    for (int k = 0; k < 5; ++k) cs[n++] = (float)(1 - pow(0.99, k + 1));
    for (int k = 0; k < 3; ++k) cs[n++] = (float)(1 - pow(0.95, k + 1));
    cs[n++] = 1.0f; cs[n++] = FLT_MIN; cs[n++] = 0.75f; cs[n++] = 0.1f; cs[n++] = nextafterf(1.0f, 0.0f);
    cs[n++] = (float)(1 - 0.999999); cs[n++] = 1.1920929e-07f; cs[n++] = (float)(1.0/3.0);
    srand(argc > 1 ? atoi(argv[1]) : 1);
    int extra = argc > 2 ? atoi(argv[2]) : 8;
    for (int k = 0; k < extra; ++k) { double e = -126.0 * rand() / RAND_MAX; cs[n++] = (float)pow(2.0, e); }
    uint64_t total = 0;
    for (int i = 0; i < n; ++i) { uint64_t b = check(cs[i]); total += b; printf("c=%-16a (%.9g): %llu mismatches of 2^32\n", cs[i], cs[i], (unsigned long long)b); fflush(stdout); }
    printf("TOTAL mismatches %llu over %d constants x 2^32 patterns\n", (unsigned long long)total, n);
    return total != 0;
}
