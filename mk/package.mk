# ---- distribution packages ----------------------------------------------------------

# The Debian packages (debian/) built twice in two directories, lintian, the symbols
# check, what the packages hold, the reproducibility of the build and a default install:
# .ci/check-package.sh says what each step checks. Builds from copies of this tree, so it
# takes a few minutes; make check covers the rest of packaging (c-tests/invariants/static-archive.sh,
# install-conventions.sh, install-consumer.sh, debian-symbols.sh).
PACKAGE_PACKAGES := debhelper dpkg-dev lintian pkg-config

deps-package:
	$(call apt_install,$(PACKAGE_PACKAGES))

check-package: deps-package
	.ci/check-package.sh

