//! A VM: its fd, its memory slots and the limits KVM reported for it.

use crate::error::{Errno, Result};
use crate::ioctl;
use crate::memory::{self, Backing, Mapping, MemoryMap, Slot};
use crate::system;
use crate::vcpu::Vcpu;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Cap, VmFd};
use parking_lot::Mutex;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// KVM slot numbers reserved at the top of the kernel's range for memory aliases, which
/// have their own namespace (`kvm_set_memory_alias`).
pub(crate) const ALIAS_SLOTS: u32 = 32;

/// One VM.
#[derive(Debug)]
pub struct Vm {
    // Field order is drop order: the VM fd is closed before the memory it mapped is
    // unmapped (vcpus are dropped earlier still, by the registry).
    fd: VmFd,
    memory: Mutex<MemoryMap>,
    /// Memory slot numbers the caller may use: `0..user_slots`.
    user_slots: u32,
    /// What KVM_CAP_SYNC_REGS reported for this VM.
    sync_caps: u64,
    /// Whether kvm_create_irqchip() made an in-kernel irqchip (interrupts then take the
    /// in-kernel path instead of KVM_INTERRUPT).
    irqchip: AtomicBool,
}

impl Vm {
    /// KVM_CREATE_VM (type 0).
    pub fn create() -> Result<Vm> {
        let fd = system::kvm()?.create_vm().map_err(Errno::from)?;
        let nr_slots = fd.check_extension_int(Cap::NrMemslots).max(0) as u32;
        let sync_caps = fd.check_extension_int(Cap::SyncRegs).max(0) as u64;
        Ok(Vm {
            fd,
            memory: Mutex::new(MemoryMap::default()),
            user_slots: nr_slots
                .saturating_sub(ALIAS_SLOTS)
                .min(u16::MAX as u32 + 1),
            sync_caps,
            irqchip: AtomicBool::new(false),
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
        Ok(())
    }

    /// Whether the VM has an in-kernel irqchip.
    #[allow(dead_code)] // used by kvm_interrupt
    pub fn has_irqchip(&self) -> bool {
        self.irqchip.load(Ordering::Acquire)
    }

    /// Memory slot numbers the caller may use: `0..user_slots()`.
    pub fn user_slots(&self) -> u32 {
        self.user_slots
    }

    /// The VM fd.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// KVM_CHECK_EXTENSION on the VM fd.
    pub fn check_extension(&self, cap: libc::c_long) -> Result<i32> {
        // SAFETY: KVM_CHECK_EXTENSION takes its argument by value.
        unsafe { ioctl::ioctl(self.raw_fd(), ioctl::io(0x03), cap as libc::c_ulong) }
    }

    /// KVM_CREATE_VCPU plus the run-area mapping.
    pub fn create_vcpu(&self, id: u32) -> Result<Vcpu> {
        let fd = self.fd.create_vcpu(u64::from(id)).map_err(Errno::from)?;
        Ok(Vcpu::new(fd, self.raw_fd(), self.sync_caps))
    }

    fn kvm_set_slot(
        &self,
        slot: u32,
        flags: u32,
        gpa: u64,
        size: u64,
        host: *mut u8,
    ) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: `host` is either memory libkvm mapped for this slot or memory the caller
        // handed over for it (the caller's promise, as with the raw ioctl); the kernel
        // checks that the range is accessible.
        unsafe { self.fd.set_user_memory_region(region) }.map_err(Errno::from)
    }

    /// `kvm_set_memory_region` (`host` = None: libkvm allocates) and
    /// `kvm_set_user_memory_region` (`host` = the caller's memory). Size 0 deletes.
    pub fn set_memory_region(
        &self,
        slot: u32,
        flags: u32,
        gpa: u64,
        size: u64,
        host: Option<*mut u8>,
    ) -> Result<()> {
        if slot >= self.user_slots || flags & !memory::VALID_FLAGS != 0 {
            return Err(Errno(libc::EINVAL));
        }
        let mut mem = self.memory.lock();
        if size == 0 {
            if mem.get(slot).is_none() {
                return Err(Errno(libc::ENOENT));
            }
            self.kvm_set_slot(slot, 0, gpa, 0, std::ptr::null_mut())?;
            mem.remove(slot);
            return Ok(());
        }
        memory::check_range(gpa, size)?;
        if let Some(h) = host {
            if h as usize % memory::PAGE_SIZE as usize != 0 {
                return Err(Errno(libc::EINVAL));
            }
            (h as u64).checked_add(size).ok_or(Errno(libc::EINVAL))?;
        }
        if mem.overlapping(gpa, size, slot).is_some() {
            return Err(Errno(libc::EEXIST));
        }
        if let Some(old) = mem.get(slot) {
            // Changing an existing slot: KVM allows new flags or a new guest address, on
            // the same memory.
            let same_memory = match (&old.backing, host) {
                (Backing::Owned(_), None) => true,
                (Backing::User, Some(h)) => h == old.host,
                _ => false,
            };
            if old.size != size || !same_memory {
                return Err(Errno(libc::EINVAL));
            }
            let host = old.host;
            self.kvm_set_slot(slot, flags, gpa, size, host)?;
            let old = mem.remove(slot).expect("slot checked above");
            mem.insert(
                slot,
                Slot {
                    gpa,
                    size,
                    flags,
                    host,
                    backing: old.backing,
                },
            );
            return Ok(());
        }
        let (host, backing) = match host {
            Some(h) => (h, Backing::User),
            None => {
                let m = Mapping::new(size)?;
                (m.as_ptr(), Backing::Owned(m))
            }
        };
        // On failure `backing` is dropped here, unmapping what we allocated.
        self.kvm_set_slot(slot, flags, gpa, size, host)?;
        mem.insert(
            slot,
            Slot {
                gpa,
                size,
                flags,
                host,
                backing,
            },
        );
        Ok(())
    }

    /// (slot, guest-physical start, size) of the caller's memory slots, by slot number.
    pub fn memory_layout(&self) -> Vec<(u32, u64, u64)> {
        let mut l = self.memory.lock().layout();
        l.retain(|&(n, _, _)| n < self.user_slots);
        l
    }

    /// The host address of guest-physical `[gpa, gpa + len)`, which must lie in one slot.
    pub fn guest_memory(&self, gpa: u64, len: u64) -> Result<*mut u8> {
        self.memory.lock().host_address(gpa, len)
    }
}
