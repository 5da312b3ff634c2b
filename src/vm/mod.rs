//! A VM: its fd, its memory slots and the limits KVM reported for it.

mod coalesced;
mod dirty_ring;
pub mod fd_backing;
mod guest_memfd;
pub(crate) mod irq;
mod memory;
pub mod slots;

pub(crate) use guest_memfd::{
    CAP_GUEST_MEMFD_FLAGS, FLAG_INIT_SHARED as GUEST_MEMFD_FLAG_INIT_SHARED,
    FLAG_MMAP as GUEST_MEMFD_FLAG_MMAP,
};

use crate::error::{Errno, Result};
use crate::ioctl;
use crate::stats::{Stats, StatsCell};
use crate::system;
use crate::vcpu::apic_mode::ApicMode;
use crate::vcpu::dirty_log::DirtyLog;
use crate::vcpu::Vcpu;
use kvm_bindings::{kvm_clock_data, kvm_enable_cap};
use kvm_ioctls::{Cap, VmFd};
use parking_lot::Mutex;
use slots::MemoryMap;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// KVM slot numbers reserved at the top of the kernel's range for memory aliases, which
/// have their own namespace (`kvm_set_memory_alias`).
pub(crate) const ALIAS_SLOTS: u32 = 32;

/// One VM.
#[derive(Debug)]
pub struct Vm {
    // Field order is drop order: the VM fd is closed before the memory it mapped is
    // unmapped (vcpus are dropped earlier still, by the registry), so that unmapping
    // large slots does not go through KVM's MMU notifier. Every duplicate of the VM fd
    // that keeps the kernel VM alive goes before `memory` too: the dirty ring's (`ring`)
    // and kernel vcpus kept for a retry (`kept`).
    /// Its binary statistics, opened on first use.
    stats: StatsCell,
    fd: VmFd,
    /// The dirty ring's state once `kvm_enable_dirty_ring` turned it on (vm/dirty_ring.rs).
    ring: OnceLock<Arc<DirtyLog>>,
    /// Kernel vcpus that a failed `create_vcpu` left behind, by id (see there).
    kept: Mutex<Vec<(u32, KernelVcpu)>>,
    memory: Mutex<MemoryMap>,
    /// Memory slot numbers the caller may use: `0..user_slots`.
    user_slots: u32,
    /// What KVM_CAP_SYNC_REGS reported for this VM.
    sync_caps: u64,
    /// Whether kvm_create_irqchip() made an in-kernel irqchip (interrupts then take the
    /// in-kernel path instead of KVM_INTERRUPT).
    irqchip: AtomicBool,
    /// How the local APICs work, shared with the vcpus.
    apic: Arc<ApicMode>,
    /// The GSI routing table last set (header and entries, as the kernel took it), empty
    /// while the kernel's default is in force: the kernel has no call that reads it back,
    /// and kvm_save_vm needs it (vm/irq.rs).
    routes: Mutex<Vec<u8>>,
    /// Whether KVM_CREATE_VCPU ever succeeded (changed under `kept`): the ring can no
    /// longer be enabled.
    vcpus_made: AtomicBool,
    /// The options of KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 last enabled (0: none).
    manual_protect: AtomicU64,
    /// The guest_memfds this VM created (vm/guest_memfd.rs).
    guest_memfds: guest_memfd::GuestMemfds,
}

/// The fd of a kernel vcpu that has no run area (yet); closed on drop.
#[derive(Debug)]
struct KernelVcpu(RawFd);

impl Drop for KernelVcpu {
    fn drop(&mut self) {
        // SAFETY: the fd is this object's alone.
        unsafe { crate::cancel::close(self.0) };
    }
}

/// Capabilities libkvm tracks when `enable_cap` enables them: the escape hatch refuses
/// them (the hatch would change the VM behind libkvm's back).
const TRACKED_CAPS: [u32; 2] = [
    kvm_bindings::KVM_CAP_SPLIT_IRQCHIP,
    kvm_bindings::KVM_CAP_X2APIC_API,
];

/// Capabilities libkvm enables only through its own call: the dirty ring replaces the
/// dirty bitmap (KVM_GET_DIRTY_LOG then fails) and needs ring pages of each vcpu mapped
/// and harvested, which `kvm_enable_dirty_ring` sets up (vm/dirty_ring.rs).
const UNSUPPORTED_CAPS: [u32; 3] = [
    kvm_bindings::KVM_CAP_DIRTY_LOG_RING,
    kvm_bindings::KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
    kvm_bindings::KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP,
];

/// Whether `kvm_vm_ioctl(KVM_ENABLE_CAP)` must refuse capability `cap` (EINVAL).
pub fn hatch_refuses_cap(cap: u32) -> bool {
    TRACKED_CAPS.contains(&cap) || UNSUPPORTED_CAPS.contains(&cap)
}

impl Vm {
    /// KVM_CREATE_VM (type 0).
    pub fn create() -> Result<Vm> {
        let fd = system::kvm()?.create_vm().map_err(Errno::from)?;
        let nr_slots = fd.check_extension_int(Cap::NrMemslots).max(0) as u32;
        let sync_caps = fd.check_extension_int(Cap::SyncRegs).max(0) as u64;
        Ok(Vm {
            stats: StatsCell::default(),
            fd,
            memory: Mutex::new(MemoryMap::default()),
            user_slots: nr_slots
                .saturating_sub(ALIAS_SLOTS)
                .min(u16::MAX as u32 + 1),
            sync_caps,
            irqchip: AtomicBool::new(false),
            apic: crate::error::try_arc(ApicMode::default())?,
            kept: Mutex::new(Vec::new()),
            routes: Mutex::new(Vec::new()),
            ring: OnceLock::new(),
            vcpus_made: AtomicBool::new(false),
            manual_protect: AtomicU64::new(0),
            guest_memfds: Default::default(),
        })
    }

    /// The kvm-ioctls handle, for VM ioctls that take the kernel's struct as it is.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// KVM_CREATE_IRQCHIP, remembered for the calls whose path depends on it.
    pub fn create_irqchip(&self) -> Result<()> {
        self.fd.create_irq_chip().map_err(Errno::from)?;
        self.irqchip.store(true, Ordering::Release);
        self.apic.set_in_kernel();
        Ok(())
    }

    /// Remembers that KVM_CAP_SPLIT_IRQCHIP put the local APICs in the kernel.
    pub(crate) fn set_split_irqchip(&self) {
        self.apic.set_in_kernel();
    }

    /// Remembers that KVM_CAP_X2APIC_API was enabled with `flags` (the kernel never turns
    /// a flag off again, so neither does this).
    pub(crate) fn set_x2apic_api(&self, flags: u64) {
        self.apic.add_x2apic_api(flags);
    }

    /// Whether the VM has the full in-kernel irqchip (PIC and IOAPIC too).
    pub fn has_irqchip(&self) -> bool {
        self.irqchip.load(Ordering::Acquire)
    }

    /// Whether the local APICs are in the kernel (a full or a split irqchip): what GSI
    /// routing needs.
    pub fn has_in_kernel_apics(&self) -> bool {
        self.apic.in_kernel()
    }

    /// Memory slot numbers the caller may use: `0..user_slots()`.
    pub fn user_slots(&self) -> u32 {
        self.user_slots
    }

    /// The VM fd.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The VM's binary statistics (opened by the first call).
    pub fn stats(&self) -> Result<&Stats> {
        self.stats.get(self.raw_fd())
    }

    /// The fds of the VM's own that are not kernel vcpus' (for a fork child, which closes
    /// its copies): its statistics fd, if open.
    pub fn stats_fd(&self) -> Option<RawFd> {
        self.stats.fd()
    }

    /// Whether the statistics fd is open (or known not to exist).
    pub fn stats_is_open(&self) -> bool {
        self.stats.is_open()
    }

    /// KVM_CHECK_EXTENSION on the VM fd.
    pub fn check_extension(&self, cap: libc::c_long) -> Result<i32> {
        ioctl::check_extension(self.raw_fd(), cap)
    }

    /// KVM_CREATE_VCPU plus the run-area mapping (not inherited by fork(): see `fork`).
    ///
    /// The kernel cannot remove a vcpu again, and answers a second KVM_CREATE_VCPU of an
    /// id with EEXIST. So a kernel vcpu whose completion fails (the run area cannot be
    /// mapped, no fd is left for it, or the caller gives it back with `keep_for_retry`)
    /// is kept, and the next call with its id completes it instead of creating it.
    pub fn create_vcpu(&self, id: u32) -> Result<Vcpu> {
        let mut kept = self.kept.lock();
        let kernel = match kept.iter().position(|(i, _)| *i == id) {
            Some(k) => kept.swap_remove(k).1,
            None => {
                // Room to keep it, reserved before the kernel vcpu exists.
                kept.try_reserve(1).map_err(|_| Errno(libc::ENOMEM))?;
                // SAFETY: KVM_CREATE_VCPU takes the id by value; the kernel returns a new
                // vcpu fd (O_CLOEXEC), which KernelVcpu owns from here.
                KernelVcpu(unsafe {
                    ioctl::ioctl(
                        self.raw_fd(),
                        ioctl::KVM_CREATE_VCPU,
                        libc::c_ulong::from(id),
                    )
                }?)
            }
        };
        self.vcpus_made.store(true, Ordering::Release);
        match self.complete_vcpu(&kernel, id) {
            Ok(v) => Ok(v), // `kernel`'s fd is closed; the vcpu lives on in `v`'s.
            Err(e) => {
                // Cannot allocate: the room was reserved, or freed by swap_remove.
                kept.push((id, kernel));
                Err(e)
            }
        }
    }

    /// A vcpu object for kernel vcpu `kernel` (id `id`): its own fd (a duplicate), run
    /// area and, with the ring on, its dirty ring.
    fn complete_vcpu(&self, kernel: &KernelVcpu, id: u32) -> Result<Vcpu> {
        let fd = crate::cancel::dup_cloexec(kernel.0)?;
        // SAFETY: `fd` is a vcpu fd of this VM that nothing else owns; kvm-ioctls takes it
        // over (and closes it if mapping the run area fails).
        let fd = unsafe { self.fd.create_vcpu_from_rawfd(fd) }.map_err(Errno::from)?;
        let mut v = Vcpu::new(fd, self.raw_fd(), self.sync_caps, self.apic.clone());
        v.open_stats_fd()?;
        if let Some(log) = self.ring.get() {
            v.attach_dirty_ring(log, id)?;
        }
        // SAFETY: advising the run area kvm-ioctls mapped with exactly this size; on
        // failure `v` is dropped, which unmaps it and closes its fd.
        crate::error::check(unsafe {
            libc::madvise(v.run_area().cast(), self.fd.run_size(), libc::MADV_DONTFORK)
        })?;
        Ok(v)
    }

    /// Keeps the kernel vcpu behind `v`, vcpu `id` of this VM that the caller is about to
    /// drop without handing it out, for the next `create_vcpu` with that id. Best effort:
    /// without memory or an fd for it, the id stays taken in the kernel (EEXIST).
    pub fn keep_for_retry(&self, id: u32, v: &Vcpu) {
        let mut kept = self.kept.lock();
        if kept.try_reserve(1).is_ok() {
            if let Ok(fd) = crate::cancel::dup_cloexec(v.raw_fd()) {
                kept.push((id, KernelVcpu(fd)));
            }
        }
    }

    /// Adds to `out` the fds of kernel vcpus kept for a retry, of the dirty ring's VM fd
    /// duplicate and of the files that back memory slots, for a fork child, which closes
    /// its copies. Called by fork()'s prepare handler, in the parent, which holds the lock
    /// every call that makes or closes these fds takes (`registry::changing_fds`): none
    /// is half-made. Taking the tables' locks is sound there: their holders never wait
    /// for the registry or fork's locks. Best effort: without memory for `out`, the fds
    /// left out stay open in the child (close-on-exec).
    pub fn kept_fds(&self, out: &mut Vec<RawFd>) {
        let mut add = |fd| {
            if out.try_reserve(1).is_ok() {
                out.push(fd);
            }
        };
        self.kept.lock().iter().for_each(|(_, f)| add(f.0));
        self.ring.get().into_iter().for_each(|l| add(l.raw_fd()));
        self.memory.lock().file_fds().for_each(add);
    }

    /// KVM_ENABLE_CAP on the VM fd; remembers the capabilities that change what other calls
    /// do (KVM_CAP_X2APIC_API: the APIC ID format `kvm_interrupt` reads;
    /// KVM_CAP_SPLIT_IRQCHIP: the local APICs are in the kernel;
    /// KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: whether reading the dirty log clears it). The
    /// dirty ring is refused with EINVAL (`UNSUPPORTED_CAPS`: `kvm_enable_dirty_ring`).
    pub fn enable_cap(&self, cap: &kvm_enable_cap) -> Result<()> {
        if UNSUPPORTED_CAPS.contains(&cap.cap) {
            return Err(Errno(libc::EINVAL));
        }
        if dirty_ring::is_manual_protect(cap.cap) {
            return self.enable_manual_protect(cap);
        }
        // SAFETY: KVM_ENABLE_CAP reads one struct kvm_enable_cap, alive across the call.
        unsafe { ioctl::ioctl_with_ref(self.raw_fd(), ioctl::KVM_ENABLE_CAP, cap) }?;
        match cap.cap {
            kvm_bindings::KVM_CAP_X2APIC_API => self.set_x2apic_api(cap.args[0]),
            kvm_bindings::KVM_CAP_SPLIT_IRQCHIP => self.set_split_irqchip(),
            _ => {}
        }
        Ok(())
    }

    /// KVM_GET_CLOCK.
    pub fn get_clock(&self) -> Result<kvm_clock_data> {
        self.fd().get_clock().map_err(Errno::from)
    }

    /// KVM_SET_CLOCK.
    pub fn set_clock(&self, clock: &kvm_clock_data) -> Result<()> {
        self.fd().set_clock(clock).map_err(Errno::from)
    }
}
