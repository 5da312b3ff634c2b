/* COMPAT SHIM, to be deleted: stand-ins for libkvm calls that other branches are adding
 * (kvm_get_supported_cpuid, kvm_set_cpuid, kvm_kick_vcpu). Each has the signature of the
 * call it replaces, so switching is a rename; they use only libkvm's escape hatches and,
 * for KVM_GET_SUPPORTED_CPUID (a /dev/kvm ioctl), /dev/kvm opened here. */
#ifndef KVMRUN_COMPAT_H
#define KVMRUN_COMPAT_H

#include <libkvm.h>

/* kvm_get_supported_cpuid(): in, cpuid->nent = room; E2BIG with nent = needed. */
int compat_get_supported_cpuid(struct kvm_cpuid2 *cpuid);
/* kvm_set_cpuid(): sets the calling thread's vcpu's CPUID. */
int compat_set_cpuid(const struct kvm_cpuid2 *cpuid);
/* kvm_kick_vcpu(): makes the owner's current or next kvm_run() return with EINTR. The
 * stand-in needs each vcpu thread to call compat_vcpu_started() after creating it. */
int compat_kick_vcpu(int vcpu_fd);
int compat_vcpu_started(int vcpu_fd);

#endif
