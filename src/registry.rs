//! Which fds are libkvm's VMs and vcpus, their lifecycle (create, destroy, attach), and
//! what fork() does to them. The registry is locked by creation, destruction, ownership
//! changes and VM-wide calls; never by the run path or the register calls, which reach
//! their vcpu through the thread-local (src/current.rs).
//!
//! ## fork()
//!
//! KVM serves a VM only to the process that created it (any other process gets EIO from
//! its ioctls), and a child that shared the parent's run areas or guest memory could
//! change the parent's vcpus behind its back. So libkvm gives a child none of it:
//!
//! - the run areas and the guest memory libkvm allocates are `MADV_DONTFORK`: they are
//!   not mapped in the child at all (QEMU does the same for guest RAM);
//! - in the child, right after fork (a `pthread_atfork` handler), libkvm forgets every VM
//!   and vcpu it had, closes the child's copies of their fds, and clears the forking
//!   thread's current vcpu. Calls naming an inherited VM then fail with EBADF and
//!   per-vcpu calls with ESRCH, as for any fd that is not a libkvm VM; the child may
//!   create VMs of its own. The parent's VMs are untouched.
//!
//! fork() waits (prepare handler) until no other thread is in a call that makes or
//! closes libkvm fds (creating or destroying a VM or vcpu, memory slots, guest_memfds,
//! the dirty ring, opening statistics: `changing_fds`), and holds the registry lock
//! across the fork: the child never inherits the registry half-changed, nor an fd that
//! was made but not yet registered (or already unregistered but not yet closed).

use crate::cancel::NoCancel;
use crate::current;
use crate::error::{Errno, Result};
use crate::stats::Stats;
use crate::vcpu::kick;
use crate::vcpu::Vcpu;
use crate::vm::Vm;
use std::cell::RefCell;
use std::os::unix::io::RawFd;
use std::sync::{Arc, LazyLock, Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Objects by fd, in a vector sorted by fd. Not a hash table: a hash table's only pointer
/// to its allocation points into the middle of it, which leak checkers (valgrind's
/// default settings) report as "possibly lost" at exit. Not a B-tree: its node
/// allocations cannot fail with an error. A vector's can (`try_insert`), and a binary
/// search over a few fds is as cheap as either.
struct FdMap<T>(Vec<(RawFd, Arc<T>)>);

impl<T> Default for FdMap<T> {
    fn default() -> Self {
        FdMap(Vec::new())
    }
}

impl<T> FdMap<T> {
    fn find(&self, fd: RawFd) -> std::result::Result<usize, usize> {
        self.0.binary_search_by_key(&fd, |&(k, _)| k)
    }

    fn get(&self, fd: &RawFd) -> Option<&Arc<T>> {
        self.find(*fd).ok().map(|i| &self.0[i].1)
    }

    fn contains_key(&self, fd: &RawFd) -> bool {
        self.find(*fd).is_ok()
    }

    /// Inserts or replaces; ENOMEM (and no change) if the vector cannot grow.
    fn try_insert(&mut self, fd: RawFd, v: Arc<T>) -> Result<()> {
        match self.find(fd) {
            Ok(i) => self.0[i].1 = v,
            Err(i) => {
                self.0.try_reserve(1).map_err(crate::error::nomem)?;
                self.0.insert(i, (fd, v));
            }
        }
        Ok(())
    }

    fn remove(&mut self, fd: &RawFd) -> Option<Arc<T>> {
        self.find(*fd).ok().map(|i| self.0.remove(i).1)
    }

    /// Moves every object `pred` chooses into `out`, which has room for them (no
    /// allocation here: the moves are reference counts).
    fn take_into(&mut self, pred: impl Fn(&T) -> bool, out: &mut Vec<Arc<T>>) {
        self.0.retain(|(_, v)| {
            if pred(v) {
                out.push(v.clone());
                false
            } else {
                true
            }
        });
    }

    fn keys(&self) -> impl Iterator<Item = &RawFd> {
        self.0.iter().map(|(k, _)| k)
    }

    fn values(&self) -> impl Iterator<Item = &Arc<T>> {
        self.0.iter().map(|(_, v)| v)
    }
}

#[derive(Default)]
struct Registry {
    vms: FdMap<Vm>,
    vcpus: FdMap<Vcpu>,
}

/// The registry's lock is std's futex mutex rather than parking_lot's: fork() holds it
/// across the fork, and std's can be released in the child (a plain atomic swap),
/// whereas parking_lot's wait queue lives in process memory, where the child would find
/// the parent's waiting threads (see `fork`). A panic while it is held (an internal bug)
/// does not poison it: every change to the maps is a single insert or remove.
#[derive(Default)]
struct RegistryLock(std::sync::Mutex<Registry>);

/// The registry, locked.
struct RegistryGuard(std::sync::MutexGuard<'static, Registry>);

impl RegistryLock {
    fn lock(&'static self) -> std::sync::MutexGuard<'static, Registry> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

static REGISTRY: LazyLock<RegistryLock> = LazyLock::new(Default::default);

/// The VM with this fd; EBADF if `fd` is not a libkvm VM.
pub fn vm(fd: RawFd) -> Result<Arc<Vm>> {
    let reg = REGISTRY.lock();
    let vm = reg.vms.get(&fd).cloned().ok_or(Errno(libc::EBADF))?;
    crate::error::test_panic_point(fd);
    drop(reg);
    Ok(vm)
}

/// The vcpu with this fd; EBADF if `fd` is not a libkvm vcpu.
pub fn vcpu(fd: RawFd) -> Result<Arc<Vcpu>> {
    REGISTRY
        .lock()
        .vcpus
        .get(&fd)
        .cloned()
        .ok_or(Errno(libc::EBADF))
}

/// What holds binary statistics: a VM or a vcpu.
enum StatsOwner {
    Vm(Arc<Vm>),
    Vcpu(Arc<Vcpu>),
}

impl StatsOwner {
    fn stats(&self) -> Result<&Stats> {
        match self {
            StatsOwner::Vm(vm) => vm.stats(),
            StatsOwner::Vcpu(v) => v.stats(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            StatsOwner::Vm(vm) => vm.stats_is_open(),
            StatsOwner::Vcpu(v) => v.stats_is_open(),
        }
    }
}

/// Runs `f` on the binary statistics of the VM or vcpu with this fd (EBADF if `fd` is
/// neither), reading their descriptors if this is the first call. A VM's first call
/// opens the fd, so fork() waits for it (`changing_fds`); a vcpu's fd is open from its
/// creation (src/stats/mod.rs: the ioctl would wait for KVM_RUN while holding that
/// lock). Statistics already open take no lock but the registry's, for the lookup.
pub fn with_stats<R>(fd: RawFd, f: impl FnOnce(&Stats) -> Result<R>) -> Result<R> {
    let owner = {
        let reg = REGISTRY.lock();
        match (reg.vms.get(&fd), reg.vcpus.get(&fd)) {
            (Some(vm), _) => StatsOwner::Vm(vm.clone()),
            (None, Some(v)) => StatsOwner::Vcpu(v.clone()),
            (None, None) => return Err(Errno(libc::EBADF)),
        }
    };
    let _fork = (!owner.is_open()).then(changing_fds);
    f(owner.stats()?)
}

/// How many vcpus VM `vm_fd` has (without allocating).
pub fn nr_vcpus_of(vm_fd: RawFd) -> usize {
    REGISTRY
        .lock()
        .vcpus
        .values()
        .filter(|v| v.vm_fd() == vm_fd)
        .count()
}

/// One vcpu of VM `vm_fd`, if it has any (without allocating).
pub fn any_vcpu_of(vm_fd: RawFd) -> Option<Arc<Vcpu>> {
    REGISTRY
        .lock()
        .vcpus
        .values()
        .find(|v| v.vm_fd() == vm_fd)
        .cloned()
}

/// Creates a VM and returns its fd.
pub fn create_vm() -> Result<RawFd> {
    install();
    let _fork = changing_fds();
    // Fallible allocations: out of memory is ENOMEM, not an abort.
    let vm = crate::error::try_arc(Vm::create()?)?;
    let fd = vm.raw_fd();
    REGISTRY.lock().vms.try_insert(fd, vm)?;
    Ok(fd)
}

/// Destroys a VM: EBUSY while any of its vcpus is owned by a thread. Its vcpus (fds, run
/// areas), memory libkvm allocated and the VM fd are released before this returns, unless
/// another thread is in the middle of a call on them (then when that call returns).
pub fn destroy_vm(fd: RawFd) -> Result<()> {
    // Dropping kvm-ioctls' fds closes them through the C library (src/cancel.rs).
    let _no_cancel = NoCancel::new();
    let _fork = changing_fds();
    let (vm, vcpus) = {
        let mut reg = REGISTRY.lock();
        if !reg.vms.contains_key(&fd) {
            return Err(Errno(libc::EBADF));
        }
        if reg.vcpus.values().any(|v| v.vm_fd() == fd && v.is_owned()) {
            return Err(Errno(libc::EBUSY));
        }
        // Room for the VM's vcpus before anything changes: out of memory is ENOMEM with
        // the VM as it was, never an abort (the call that frees memory must not need it).
        let n = reg.vcpus.values().filter(|v| v.vm_fd() == fd).count();
        let mut vcpus: Vec<Arc<Vcpu>> = Vec::new();
        vcpus.try_reserve_exact(n).map_err(crate::error::nomem)?;
        reg.vcpus.take_into(|v| v.vm_fd() == fd, &mut vcpus);
        (reg.vms.remove(&fd), vcpus)
    };
    // Outside the lock: vcpus first (close fds, unmap run areas), then the VM.
    drop(vcpus);
    drop(vm);
    Ok(())
}

/// Creates vcpu `id` of VM `vm_fd`, owned by the calling thread; returns its fd. If it
/// fails once the kernel vcpu exists, the VM keeps that for the next call with `id`
/// (`Vm::create_vcpu`).
pub fn create_vcpu(vm_fd: RawFd, id: u32) -> Result<RawFd> {
    // A failure drops kvm-ioctls' fds, which closes them through the C library.
    let _no_cancel = NoCancel::new();
    let _fork = changing_fds();
    let vm = vm(vm_fd)?;
    if current::thread_has_vcpu() {
        return Err(Errno(libc::EBUSY));
    }
    let v = match crate::error::try_arc_or_back(vm.create_vcpu(id)?) {
        Ok(v) => v,
        Err(v) => {
            // No memory for the shared object: the kernel vcpu stays for a retry.
            vm.keep_for_retry(id, &v);
            return Err(Errno(libc::ENOMEM));
        }
    };
    let keep = |v: Arc<Vcpu>| {
        // The caller gets no fd, so this vcpu object goes; the kernel vcpu stays for
        // a retry with the same id.
        vm.keep_for_retry(id, &v);
        drop(v);
    };
    if let Err(e) = kick::freeze().and_then(|()| v.claim()) {
        keep(v);
        return Err(e);
    }
    let fd = v.raw_fd();
    {
        let mut reg = REGISTRY.lock();
        if !reg.vms.get(&vm_fd).is_some_and(|x| Arc::ptr_eq(x, &vm)) {
            // The VM was destroyed while we created the vcpu: drop it again (the kept
            // kernel vcpu goes with the VM, with our reference to it, below).
            drop(reg);
            v.release();
            drop(v);
            return Err(Errno(libc::EBADF));
        }
        if let Err(e) = reg.vcpus.try_insert(fd, v.clone()) {
            drop(reg);
            v.release();
            keep(v);
            return Err(e);
        }
    }
    if let Err(e) = current::set_current(v) {
        // Not the thread's after all (set_current gave the claim up). Dropped outside the
        // lock, as destroy_vm does.
        let stale = REGISTRY.lock().vcpus.remove(&fd);
        if let Some(v) = stale {
            keep(v);
        }
        return Err(e);
    }
    Ok(fd)
}

/// Makes vcpu `fd` the calling thread's: EBUSY if the thread has a vcpu or another thread
/// owns this one.
pub fn attach_vcpu(fd: RawFd) -> Result<()> {
    // Claimed under the registry lock, so a concurrent destroy either sees the owner
    // (EBUSY) or has already removed the vcpu (EBADF).
    let v = {
        let reg = REGISTRY.lock();
        let v = reg.vcpus.get(&fd).cloned().ok_or(Errno(libc::EBADF))?;
        if current::thread_has_vcpu() {
            return Err(Errno(libc::EBUSY));
        }
        v.claim()?;
        v
    };
    current::set_current(v)
}

/// What a child process inherited at fork(): kept (never dropped, so nothing of the
/// parent's is closed twice or unmapped in the child) but out of reach.
static INHERITED: std::sync::Mutex<Vec<Registry>> = std::sync::Mutex::new(Vec::new());

/// fork() prepare handler: the registry, locked across the fork (see `fork`).
fn lock_for_fork() -> RegistryGuard {
    RegistryGuard(REGISTRY.lock())
}

/// fork() prepare handler, after `lock_for_fork`: the fds the VMs keep besides their own
/// and their vcpus' (`Vm::kept_fds`), gathered in the parent, where their tables' locks
/// can be taken (in the child, a lock another thread held at fork() would stay locked).
fn kept_fds(reg: &RegistryGuard) -> Vec<RawFd> {
    let mut fds = Vec::new();
    for vm in reg.0.vms.values() {
        vm.kept_fds(&mut fds);
    }
    fds
}

/// fork() child handler: forgets the parent's VMs and vcpus and closes the child's
/// copies of their fds and of `kept` (`kept_fds`). Their run areas and libkvm's guest
/// memory are MADV_DONTFORK, so the child has no mapping to release.
fn forget_inherited(reg: &mut RegistryGuard, kept: &[RawFd]) {
    let old = std::mem::take(&mut *reg.0);
    // Their statistics fds (src/stats), where open.
    let stats = old.vms.values().filter_map(|vm| vm.stats_fd());
    let stats = stats.chain(old.vcpus.values().filter_map(|v| v.stats_fd()));
    let all = old.vms.keys().chain(old.vcpus.keys()).copied();
    for fd in all.chain(kept.iter().copied()).chain(stats) {
        // SAFETY: these fds are the child's copies of libkvm's own fds; nothing in the
        // child refers to them any more (the objects are kept in INHERITED, never dropped).
        unsafe { crate::cancel::close(fd) };
    }
    INHERITED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(old);
}

// fork() handlers.

static INSTALL: Once = Once::new();

/// Held shared by every call that creates or closes libkvm fds, exclusively by fork().
/// std's lock, not parking_lot's, for the reason given at the registry's lock: the child
/// must be able to release it.
static FDS_CHANGING: RwLock<()> = RwLock::new(());

/// Held while a call creates or closes libkvm fds, so that fork() waits until the fds
/// and the registry agree.
fn changing_fds() -> RwLockReadGuard<'static, ()> {
    FDS_CHANGING.read().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on the VM with this fd (EBADF if there is none) for a call that makes or
/// closes fds the VM keeps (memory slots backed by a file, kvm_create_guest_memfd, the
/// dirty ring): fork() waits for it (`changing_fds`), so a child never inherits such an
/// fd made but not yet recorded, or one that is no longer recorded but still open.
pub fn with_vm_changing_fds<R>(fd: RawFd, f: impl FnOnce(&Vm) -> Result<R>) -> Result<R> {
    // A failure may drop a file's duplicate, which closes it (src/cancel.rs).
    let _no_cancel = NoCancel::new();
    let _fork = changing_fds();
    f(&*vm(fd)?)
}

/// What `prepare` took, on the forking thread, until the parent and child handlers
/// release it (in the child, that thread's copy): fork's locks and the kept fds.
type Held = (RwLockWriteGuard<'static, ()>, RegistryGuard, Vec<RawFd>);

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Registers the fork handlers; called before the first VM exists.
fn install() {
    INSTALL.call_once(|| {
        // SAFETY: the handlers are plain functions of this library that never unwind.
        // If registration fails (ENOMEM) fork simply keeps its default behaviour.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

extern "C" fn prepare() {
    let fds = FDS_CHANGING.write().unwrap_or_else(PoisonError::into_inner);
    let reg = lock_for_fork();
    let kept = kept_fds(&reg);
    let _ = HELD.try_with(|h| *h.borrow_mut() = Some((fds, reg, kept)));
}

extern "C" fn parent() {
    let _ = HELD.try_with(|h| h.borrow_mut().take());
}

extern "C" fn child() {
    let _ = HELD.try_with(|h| {
        if let Some((_fds, mut reg, kept)) = h.borrow_mut().take() {
            forget_inherited(&mut reg, &kept);
        }
    });
    current::forget_current();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state after an EINTR that counted a kick whose flag store came after the
    /// owner cleared the flag: the next KVM_RUN exits at once on the leftover flag, and
    /// that must not be a second EINTR for the same kick.
    #[test]
    fn a_leftover_flag_of_an_answered_kick_is_no_second_eintr() {
        // Without a usable /dev/kvm there is nothing to test; with one, a VM that cannot
        // be made is a failure, not an early pass.
        let usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if !usable {
            return;
        }
        let vm_fd = create_vm().expect("a VM on a usable /dev/kvm");
        let vm = vm(vm_fd).unwrap();
        vm.set_memory_region(0, 0, 0, 0x1000, crate::vm::fd_backing::Source::Anonymous)
            .unwrap();
        // SAFETY: the slot's first byte, mapped while the VM lives.
        unsafe { vm.guest_memory(0, 1).unwrap().write(0xf4) }; // hlt
        create_vcpu(vm_fd, 0).unwrap();
        current::with_current(|v| {
            let mut s = v.get_sregs()?;
            s.cs.base = 0;
            s.cs.selector = 0;
            v.set_sregs(&s)?;
            let mut r = v.get_regs()?;
            r.rip = 0;
            v.set_regs(&r)?;
            v.answered_kick_with_leftover_flag();
            assert_eq!(v.run(), Ok(kvm_bindings::KVM_EXIT_HLT as i32));
            Ok(())
        })
        .unwrap();
        current::clear_current().unwrap();
        destroy_vm(vm_fd).unwrap();
    }
}
