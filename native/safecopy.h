/* See safecopy.c. */
#ifndef PYSENTRY_SAFECOPY_H
#define PYSENTRY_SAFECOPY_H

int sc_install(void);
long sc_copy(void *dst, const void *src, long n);
unsigned long sc_map(int fd, unsigned long length, int *err);
int sc_unmap(unsigned long addr, unsigned long length);

#endif
