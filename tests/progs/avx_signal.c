#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <immintrin.h>
static volatile int hits;
__attribute__((target("avx"))) static void handler(int s) { __m256d z = _mm256_set1_pd(-1.0); volatile double out[4]; _mm256_storeu_pd((double*)out, z); hits++; }
__attribute__((target("avx"))) int main(void) {
  signal(SIGUSR1, handler);
  __m256d a = _mm256_set_pd(1.0, 2.0, 3.0, 4.0);
  for (int i = 0; i < 100; i++) { raise(SIGUSR1); a = _mm256_add_pd(a, _mm256_set1_pd(1.0)); }
  double r[4]; _mm256_storeu_pd(r, a);
  printf("%d %.1f %.1f %.1f %.1f\n", hits, r[0], r[1], r[2], r[3]);
  return 0;
}
