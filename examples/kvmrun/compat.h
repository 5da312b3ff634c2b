/* COMPAT SHIM, to be deleted: a stand-in for kvm_kick_vcpu(), which another branch is
 * adding to libkvm. It has that call's signature, so switching is a rename; it uses only
 * the run area (immediate_exit) and a signal of its own (SIGUSR1). */
#ifndef KVMRUN_COMPAT_H
#define KVMRUN_COMPAT_H

#include <libkvm.h>

/* kvm_kick_vcpu(): makes the owner's current or next kvm_run() return with EINTR. The
 * stand-in needs each vcpu thread to call compat_vcpu_started() after creating it. */
int compat_kick_vcpu(int vcpu_fd);
int compat_vcpu_started(int vcpu_fd);

#endif
