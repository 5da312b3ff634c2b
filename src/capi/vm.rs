//! VM lifetime, vcpu creation and ownership, and VM-wide settings (capabilities, the
//! TSS and identity-map addresses, the VM clock).

use crate::capi::{vm_get, vm_set};
use crate::current;
use crate::error::c_int;
use crate::error::Errno;
use crate::registry;
use kvm_bindings::kvm_clock_data;
use kvm_bindings::kvm_enable_cap;
use libc::c_int;
use libc::c_uint;

/// Creates a VM and returns its fd (O_CLOEXEC). Free it with kvm_destroy_vm(), not
/// close(). Errors: those of opening /dev/kvm (ENOENT, EACCES), EMFILE, ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_vm() -> c_int {
    c_int(registry::create_vm)
}

/// Destroys VM `vm`: its vcpus (fds and run areas), the memory libkvm allocated for it and
/// the VM fd are released. Memory the caller supplied is left alone. Errors: EBADF if
/// `vm` is not a libkvm VM; EBUSY while any of its vcpus is attached to a thread (detach
/// them, or let their threads exit, first); ENOMEM (nothing released) if there is no
/// memory to take its vcpus apart.
#[no_mangle]
pub extern "C" fn kvm_destroy_vm(vm: c_int) -> c_int {
    c_int(|| registry::destroy_vm(vm).map(|()| 0))
}

/// Creates vcpu `id` in VM `vm`, maps its run area and makes it the calling thread's
/// vcpu. Returns the vcpu fd, which other threads use to name it (kvm_attach_vcpu()).
/// Errors: EBADF (`vm` not a libkvm VM), EBUSY (this thread already has a vcpu), EEXIST
/// (`id` already exists in the VM), EINVAL (`id` out of range), ENOMEM, EMFILE. A kernel
/// vcpu that a failed call left behind is kept, and the next call with its `id` completes
/// it.
#[no_mangle]
pub extern "C" fn kvm_create_vcpu(vm: c_int, id: c_uint) -> c_int {
    c_int(|| registry::create_vcpu(vm, id))
}

/// Gives up the calling thread's vcpu, so that another thread can kvm_attach_vcpu() it.
/// Its registers and state are kept. Also works on a thread that left kvm_run() with
/// siglongjmp() from a signal handler. Errors: ESRCH if the thread has no vcpu.
#[no_mangle]
pub extern "C" fn kvm_detach_vcpu() -> c_int {
    c_int(|| current::clear_current().map(|()| 0))
}

/// Makes the detached vcpu `vcpu_fd` the calling thread's vcpu; a vcpu whose owner thread
/// ended without detaching it counts as detached. Errors: EBADF (`vcpu_fd` is not a
/// libkvm vcpu), EBUSY (this thread already has a vcpu, or another thread owns this one).
#[no_mangle]
pub extern "C" fn kvm_attach_vcpu(vcpu_fd: c_int) -> c_int {
    c_int(|| registry::attach_vcpu(vcpu_fd).map(|()| 0))
}

/// Sets the guest-physical address of the three-page region KVM needs for a task state
/// segment when it runs real-mode code on Intel hosts without unrestricted guest (below
/// 4 GiB, outside guest memory; QEMU uses 0xfffbd000). Call it before the first kvm_run();
/// elsewhere it is accepted and unused. Errors: EBADF (not a VM), EINVAL (the region does
/// not end below 4 GiB), EEXIST (Intel hosts that use it: already set).
#[no_mangle]
pub extern "C" fn kvm_set_tss_addr(vm: c_int, addr: u64) -> c_int {
    c_int(|| {
        let vm = registry::vm(vm)?;
        let addr = usize::try_from(addr).map_err(|_| Errno(libc::EINVAL))?;
        vm.fd().set_tss_address(addr).map_err(Errno::from)?;
        Ok(0)
    })
}

/// Sets the guest-physical address of the one-page identity page table KVM needs for
/// real-mode and unpaged code on Intel hosts without unrestricted guest (outside guest
/// memory; the default is the page below the TSS region, QEMU uses 0xfeffc000). Call it
/// before creating vcpus; elsewhere it is accepted and unused. Errors: EBADF (not a VM),
/// EINVAL (a vcpu has been created in the VM already).
#[no_mangle]
pub extern "C" fn kvm_set_identity_map_addr(vm: c_int, addr: u64) -> c_int {
    c_int(|| {
        registry::vm(vm)?
            .fd()
            .set_identity_map_address(addr)
            .map_err(Errno::from)?;
        Ok(0)
    })
}

/// Enables capability `cap->cap` on VM `vm` with the arguments in `cap->args` (for
/// example KVM_CAP_SPLIT_IRQCHIP, KVM_CAP_X86_USER_SPACE_MSR, KVM_CAP_X86_DISABLE_EXITS,
/// KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2). Some capabilities change how other calls behave:
/// with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, reading the dirty log no longer clears it
/// (use kvm_clear_dirty_log()); with KVM_CAP_X2APIC_API, kvm_interrupt() addresses a vcpu
/// in x2APIC mode by its 32-bit x2APIC ID. The dirty ring (KVM_CAP_DIRTY_LOG_RING*) is
/// refused: kvm_enable_dirty_ring() is the one way to turn it on. Errors: EBADF (not a
/// VM), EFAULT (`cap` NULL), EINVAL (unknown capability, nonzero flags, arguments the
/// kernel refuses, the dirty ring, or KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with
/// KVM_DIRTY_LOG_INITIALLY_SET once the ring is on), EEXIST (KVM_CAP_SPLIT_IRQCHIP once the VM has an
/// irqchip or a vcpu).
#[no_mangle]
pub extern "C" fn kvm_enable_cap(vm: c_int, cap: *const kvm_enable_cap) -> c_int {
    vm_set(vm, cap, |vm, a| vm.enable_cap(a))
}

/// Reads VM `vm`'s kvmclock: `clock->clock` is the guest's clock in nanoseconds, `flags`
/// says which other fields (host realtime, host TSC) are valid. Errors: EBADF (not a VM),
/// EFAULT (`clock` NULL).
#[no_mangle]
pub extern "C" fn kvm_get_clock(vm: c_int, clock: *mut kvm_clock_data) -> c_int {
    vm_get(vm, clock, |vm| vm.get_clock())
}

/// Sets VM `vm`'s kvmclock to `clock->clock` nanoseconds (with KVM_CLOCK_REALTIME in
/// `flags`, also accounting for the host realtime that passed since `clock->realtime`);
/// the clock keeps running from there. Errors: EBADF (not a VM), EFAULT (`clock` NULL),
/// EINVAL (unknown flags).
#[no_mangle]
pub extern "C" fn kvm_set_clock(vm: c_int, clock: *const kvm_clock_data) -> c_int {
    vm_set(vm, clock, |vm, a| vm.set_clock(a))
}
