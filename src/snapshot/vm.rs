//! `kvm_save_vm` / `kvm_restore_vm`: what a VM blob holds (its device state, not its
//! memory or vcpus), captured from and applied to a VM.

use super::blob::*;
use crate::error::{nomem, Errno, Result};
use crate::registry;
use crate::vm::irq::{routing_len, MAX_ROUTES};
use crate::vm::Vm;
use kvm_bindings::{kvm_clock_data, kvm_irqchip, kvm_pit_state2};

/// Everything `kvm_save_vm` records about a VM (not its memory, not its vcpus).
struct VmState {
    nr_vcpus: u32,
    /// (slot, guest-physical start, size).
    layout: Vec<(u32, u64, u64)>,
    pic: Option<(kvm_irqchip, kvm_irqchip, kvm_irqchip)>,
    pit: Option<kvm_pit_state2>,
    clock: kvm_clock_data,
    /// The GSI routing table as kvm_set_gsi_routing last set it (None: the default).
    routing: Option<Vec<u8>>,
    /// Bytes of each vcpu's dirty ring; 0: the VM logs into the kernel's bitmaps.
    ring: u32,
}

fn chip(vm: &Vm, id: u32) -> Result<kvm_irqchip> {
    let mut c = kvm_irqchip {
        chip_id: id,
        ..Default::default()
    };
    vm.get_irqchip(&mut c)?;
    Ok(c)
}

fn capture_vm(vm: &Vm) -> Result<VmState> {
    let pic = if vm.has_irqchip() {
        Some((
            chip(vm, kvm_bindings::KVM_IRQCHIP_PIC_MASTER)?,
            chip(vm, kvm_bindings::KVM_IRQCHIP_PIC_SLAVE)?,
            chip(vm, kvm_bindings::KVM_IRQCHIP_IOAPIC)?,
        ))
    } else {
        None
    };
    let pit = match vm.get_pit2() {
        Ok(p) => Some(p),
        Err(Errno(libc::ENXIO)) => None,
        Err(e) => return Err(e),
    };
    Ok(VmState {
        nr_vcpus: registry::nr_vcpus_of(vm.raw_fd()) as u32,
        layout: vm.memory_layout()?,
        pic,
        pit,
        clock: vm.get_clock()?,
        routing: vm.gsi_routing()?,
        ring: vm.dirty_ring_bytes(),
    })
}

fn encode_vm(s: &VmState) -> Result<Vec<u8>> {
    let mut w = Writer::new(KIND_VM)?;
    let mut info = Vec::new();
    // With the room reserved, the extends below do not allocate.
    info.try_reserve_exact(8 + 24 * s.layout.len())
        .map_err(nomem)?;
    info.extend_from_slice(&s.nr_vcpus.to_le_bytes());
    info.extend_from_slice(&(s.layout.len() as u32).to_le_bytes());
    for &(slot, gpa, size) in &s.layout {
        info.extend_from_slice(&slot.to_le_bytes());
        info.extend_from_slice(&0u32.to_le_bytes());
        info.extend_from_slice(&gpa.to_le_bytes());
        info.extend_from_slice(&size.to_le_bytes());
    }
    w.section(T_VM_INFO, &info)?;
    if let Some((m, sl, io)) = &s.pic {
        w.section(T_PIC_MASTER, bytes_of(m))?;
        w.section(T_PIC_SLAVE, bytes_of(sl))?;
        w.section(T_IOAPIC, bytes_of(io))?;
    }
    if let Some(p) = &s.pit {
        w.section(T_PIT2, bytes_of(p))?;
    }
    w.section(T_CLOCK, bytes_of(&s.clock))?;
    if let Some(r) = &s.routing {
        w.section(T_GSI_ROUTING, r)?;
    }
    if s.ring != 0 {
        w.section(T_DIRTY_RING, &s.ring.to_le_bytes())?;
    }
    Ok(w.finish())
}

fn decode_vm(blob: &[u8]) -> Result<VmState> {
    let s = Sections::parse(blob, KIND_VM)?;
    let info = s.need(T_VM_INFO)?;
    if info.len() < 8 {
        return Err(bad());
    }
    let n = le32(info, 4) as usize;
    if (info.len() - 8) / 24 != n || (info.len() - 8) % 24 != 0 {
        return Err(bad());
    }
    let mut layout = Vec::new();
    layout.try_reserve_exact(n).map_err(nomem)?;
    layout.extend((0..n).map(|i| {
        let at = 8 + 24 * i;
        (le32(info, at), le64(info, at + 8), le64(info, at + 16))
    }));
    let pic = match (s.get(T_PIC_MASTER), s.get(T_PIC_SLAVE), s.get(T_IOAPIC)) {
        (None, None, None) => None,
        (Some(m), Some(sl), Some(io)) => Some((
            pod::<kvm_irqchip>(m)?,
            pod::<kvm_irqchip>(sl)?,
            pod::<kvm_irqchip>(io)?,
        )),
        _ => return Err(bad()),
    };
    let chips_ok = pic
        .as_ref()
        .is_none_or(|(m, sl, io): &(kvm_irqchip, _, _)| {
            m.chip_id == kvm_bindings::KVM_IRQCHIP_PIC_MASTER
                && sl.chip_id == kvm_bindings::KVM_IRQCHIP_PIC_SLAVE
                && io.chip_id == kvm_bindings::KVM_IRQCHIP_IOAPIC
        });
    if !chips_ok {
        return Err(bad());
    }
    let routing = match s.get(T_GSI_ROUTING) {
        None => None,
        Some(r) => {
            // A whole struct kvm_irq_routing: its header's `nr` says how long it is.
            if r.len() < 8 || le32(r, 0) > MAX_ROUTES || r.len() != routing_len(le32(r, 0)) {
                return Err(bad());
            }
            let mut table = Vec::new();
            table.try_reserve_exact(r.len()).map_err(nomem)?;
            table.extend_from_slice(r);
            Some(table)
        }
    };
    let ring = match s.get(T_DIRTY_RING) {
        None => 0,
        Some(r) if r.len() == 4 && le32(r, 0) != 0 => le32(r, 0),
        Some(_) => return Err(bad()),
    };
    Ok(VmState {
        ring,
        nr_vcpus: le32(info, 0),
        layout,
        pic,
        pit: s.opt(T_PIT2)?,
        clock: pod(s.need(T_CLOCK)?)?,
        routing,
    })
}

fn check_vm_fits(vm: &Vm, s: &VmState) -> Result<()> {
    if registry::nr_vcpus_of(vm.raw_fd()) as u32 != s.nr_vcpus || vm.memory_layout()? != s.layout {
        return Err(Errno(libc::EINVAL));
    }
    // A VM of the other dirty-log mode has another shape (the ring's size may differ).
    if (s.ring != 0) != (vm.dirty_ring_bytes() != 0) {
        return Err(Errno(libc::EINVAL));
    }
    if s.pic.is_some() && !vm.has_irqchip() {
        return Err(Errno(libc::ENXIO));
    }
    if s.pit.is_some() {
        vm.get_pit2()?; // ENXIO without a PIT
    }
    if s.routing.is_some() && !vm.has_in_kernel_apics() {
        return Err(Errno(libc::ENXIO)); // no in-kernel irqchip to route to
    }
    Ok(())
}

fn apply_vm(vm: &Vm, s: &VmState) -> Result<()> {
    if let Some((m, sl, io)) = &s.pic {
        vm.set_irqchip(m)?;
        vm.set_irqchip(sl)?;
        vm.set_irqchip(io)?;
    }
    if let Some(p) = &s.pit {
        vm.set_pit2(p)?;
    }
    // The clock continues from the saved value: guest time stands still while the VM is
    // saved.
    let clock = kvm_clock_data {
        clock: s.clock.clock,
        ..Default::default()
    };
    vm.set_clock(&clock)?;
    // Last: the kernel cannot give back the table it replaces, so a refusal of anything
    // above must not have changed it. A VM saved with the default table keeps the table
    // it has (the kernel's default, unless its program set one).
    match &s.routing {
        Some(r) => {
            let mut table = Vec::new();
            table.try_reserve_exact(r.len()).map_err(nomem)?;
            table.extend_from_slice(r);
            vm.load_gsi_routing(table)
        }
        None => Ok(()),
    }
}

/// `kvm_save_vm`: the blob of VM `vm`'s device state.
pub fn save_vm(vm: &Vm) -> Result<Vec<u8>> {
    encode_vm(&capture_vm(vm)?)
}

/// `kvm_restore_vm`: checks `blob` completely and that it fits `vm`, then loads it;
/// puts back what the VM held if the kernel refuses part of it.
pub fn restore_vm(vm: &Vm, blob: &[u8]) -> Result<()> {
    let s = decode_vm(blob)?;
    check_vm_fits(vm, &s)?;
    let before = capture_vm(vm)?;
    apply_vm(vm, &s).inspect_err(|_| {
        let _ = apply_vm(vm, &before);
    })
}
