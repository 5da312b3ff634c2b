# ---- install ------------------------------------------------------------------------

# GNU conventions: `install` installs the binaries as built (debug info kept, for a
# distribution's debug-symbol packages), `install-strip` strips them with $(STRIP). The
# static archive is never stripped by them: it holds no debug info unless STATIC_DEBUG=yes
# asked for it. Installing into the running system (DESTDIR empty) ends, as libtool's
# --finish does, by refreshing the dynamic linker's cache (ldconfig), so that a program
# linked against the new libkvm starts; only root can, and DESTDIR installs leave it to the
# package manager.
INSTALL_STRIP_FLAG ?=

install: all
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(BINDIR)
	$(INSTALL_PROGRAM) $(INSTALL_STRIP_FLAG) -m 755 $(SO) $(DESTDIR)$(LIBDIR)/libkvm.so.$(VERSION)
	ln -sf libkvm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libkvm.so
	$(INSTALL_DATA) $(B)/libkvm.a $(DESTDIR)$(LIBDIR)/libkvm.a
	$(INSTALL_DATA) include/libkvm.h $(DESTDIR)$(INCLUDEDIR)/libkvm.h
	$(PC_SED) > $(DESTDIR)$(PKGCONFIGDIR)/libkvm.pc
	$(INSTALL_PROGRAM) $(INSTALL_STRIP_FLAG) -m 755 $(B)/inst/kvmrun $(DESTDIR)$(BINDIR)/kvmrun
	$(if $(MAN1),$(INSTALL_DATA) $(MAN1) $(DESTDIR)$(MANDIR)/man1/)
	$(if $(MAN3),$(INSTALL_DATA) $(MAN3) $(DESTDIR)$(MANDIR)/man3/)
	$(if $(MAN7),$(INSTALL_DATA) $(MAN7) $(DESTDIR)$(MANDIR)/man7/)
	$(POST_INSTALL_LDCONFIG)

install-strip:
	$(MAKE) INSTALL_STRIP_FLAG='-s --strip-program=$(STRIP)' install

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkvm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libkvm.so $(DESTDIR)$(LIBDIR)/libkvm.a \
	      $(DESTDIR)$(INCLUDEDIR)/libkvm.h $(DESTDIR)$(PKGCONFIGDIR)/libkvm.pc \
	      $(DESTDIR)$(BINDIR)/kvmrun \
	      $(patsubst man/%,$(DESTDIR)$(MANDIR)/%,$(MAN1) $(MAN3) $(MAN7))
	$(POST_INSTALL_LDCONFIG)

POST_INSTALL_LDCONFIG = $(if $(DESTDIR),,@if [ "$$(id -u)" = 0 ]; then echo $(LDCONFIG); $(LDCONFIG); \
	else echo "not root: run ldconfig as root, or set LD_LIBRARY_PATH=$(LIBDIR)"; fi)

