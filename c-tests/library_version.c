/* kvm_get_library_version() reports the version of the libkvm.so it runs in, which matches the header's LIBKVM_VERSION_* macros and the library's file name. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include "harness.h"

/* No require_kvm(): nothing here touches /dev/kvm, so the test runs everywhere. */
int main(void)
{
	/* The macros are integer constants the preprocessor can compare. */
#if !defined(LIBKVM_VERSION) || LIBKVM_VERSION != LIBKVM_VERSION_MAJOR * 10000 + LIBKVM_VERSION_MINOR * 100 + LIBKVM_VERSION_PATCH
#error "LIBKVM_VERSION is not major * 10000 + minor * 100 + patch"
#endif
	CHECK(LIBKVM_VERSION_MAJOR >= 1);
	CHECK(LIBKVM_VERSION_MINOR >= 0 && LIBKVM_VERSION_MINOR < 100);
	CHECK(LIBKVM_VERSION_PATCH >= 0 && LIBKVM_VERSION_PATCH < 100);

	/* The tests are built against the library they run with: the same version. It never
	 * fails, and leaves errno alone. */
	errno = 12345;
	int v = kvm_get_library_version();
	CHECK_EQ(errno, 12345);
	CHECK_EQ(v, LIBKVM_VERSION);
	CHECK_EQ(v / 10000, LIBKVM_VERSION_MAJOR);
	CHECK_EQ(v / 100 % 100, LIBKVM_VERSION_MINOR);
	CHECK_EQ(v % 100, LIBKVM_VERSION_PATCH);

	/* The library that answered is the file libkvm.so.<major>.<minor>.<patch> of that
	 * version, loaded through its soname link libkvm.so.<major>. */
	Dl_info info;
	CHECK(dladdr((void *)kvm_get_library_version, &info) != 0 && info.dli_fname);
	char real[PATH_MAX], want[64];
	CHECK(realpath(info.dli_fname, real) != NULL);
	const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
	snprintf(want, sizeof(want), "libkvm.so.%d.%d.%d", v / 10000, v / 100 % 100, v % 100);
	if (strcmp(base, want) != 0)
		FAIL("kvm_get_library_version() says %d, but the library is %s", v, real);
	const char *soname = strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
	snprintf(want, sizeof(want), "libkvm.so.%d", LIBKVM_VERSION_MAJOR);
	if (strcmp(soname, want) != 0)
		FAIL("loaded as %s, not through the soname %s", info.dli_fname, want);

	printf("libkvm %d.%d.%d (%d) from %s\n", v / 10000, v / 100 % 100, v % 100, v, real);
	return 0;
}
