//! VM lifetime and vcpu creation/ownership.

use crate::error::{c_int, Errno};
use crate::registry;
use crate::vcpu;
use libc::{c_int, c_uint};

/// Creates a VM and returns its fd (O_CLOEXEC). Free it with kvm_destroy_vm(), not
/// close(). Errors: those of opening /dev/kvm (ENOENT, EACCES), EMFILE, ENOMEM.
#[no_mangle]
pub extern "C" fn kvm_create_vm() -> c_int {
    c_int(registry::create_vm)
}

/// Destroys VM `vm`: its vcpus (fds and run areas), the memory libkvm allocated for it and
/// the VM fd are released. Memory the caller supplied is left alone. Errors: EBADF if
/// `vm` is not a libkvm VM; EBUSY while any of its vcpus is attached to a thread (detach
/// them, or let their threads exit, first).
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
    c_int(|| vcpu::clear_current().map(|()| 0))
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
