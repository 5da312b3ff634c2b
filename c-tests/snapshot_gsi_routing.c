/* kvm_save_vm carries the GSI routing table kvm_set_gsi_routing set (the kernel cannot give it back): a GSI routed to an MSI still reaches the guest's handler after kvm_restore_vm in another process; bad tables and the hatch are refused. */
#define _GNU_SOURCE
#include "harness.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern const uint8_t rm_intr_start[], rm_intr_iret[], rm_intr_fault[], rm_intr_msi[];
#define G(label) (0x1000 + (uint16_t)(label - rm_intr_start))

#define GSI 30          /* beyond the irqchip's 24 default routes: only our table has it */
#define VECTOR 0x50     /* rm_intr's MSI handler reports it on port 0x60 */

static int vm = -1;

/* A VM with an in-kernel irqchip whose vcpu waits in rm_intr with interrupts on. */
static void machine(void)
{
	vm = vm_with_memory(1 << 20);
	OK(kvm_create_irqchip(vm));
	load_blob(vm, 0x1000, BLOB(rm_intr));
	OK(kvm_create_vcpu(vm, 0));
	setup_unreal_mode(0x1000); /* addr32 reaches the local APIC */
	for (unsigned v = 0; v < 256; v++) {
		uint16_t *ivt = kvm_guest_memory(vm, 4 * v, 4);
		CHECK(ivt != NULL);
		ivt[0] = v < 0x20 ? G(rm_intr_fault) : v == VECTOR ? G(rm_intr_msi) : G(rm_intr_iret);
		ivt[1] = 0;
	}
	struct kvm_regs r;
	OK(kvm_get_regs(&r));
	r.rsp = 0x9000;
	OK(kvm_set_regs(&r));
	run_until_out(0x67); /* it read its LVT timer: the local APIC is on */
	run_until_out(0x66); /* ready, about to halt with interrupts on */
}

/* Raises GSI and returns the vector the guest's handler reported, or -1 if no interrupt
 * came within about a second (the guest halts in the kernel until one does). */
static int deliver(void)
{
	OK(kvm_irq_line(vm, GSI, 1));
	OK(kvm_irq_line(vm, GSI, 0));
	watchdog_start(100);
	int got = -1;
	for (int tries = 0; tries < 10; tries++) {
		int r = kvm_run();
		if (r == -1 && errno == EINTR)
			continue;
		CHECK_EQ(r, KVM_EXIT_IO);
		struct kvm_run *run = kvm_run_area();
		CHECK_EQ(run->io.port, 0x60);
		got = *((uint8_t *)run + run->io.data_offset);
		break;
	}
	watchdog_stop();
	return got;
}

static struct { struct kvm_irq_routing h; struct kvm_irq_routing_entry e[1]; } table = {
	.h.nr = 1,
	.e[0] = { .gsi = GSI, .type = KVM_IRQ_ROUTING_MSI,
		  .u.msi = { .address_lo = 0xfee00000, .data = VECTOR } },
};

static uint8_t buf[1 << 16];

/* The blob of VM `v` (kvm_save_vm). */
static size_t save(int v)
{
	size_t len = sizeof(buf);
	OK(kvm_save_vm(v, buf, &len));
	return len;
}

/* The fresh process: the same machine, the blob restored, the route used; then a blob
 * with a routing table (from a split irqchip: no PIC state) into a VM without in-kernel
 * local APICs. */
static int restore(const char *path)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	size_t len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	CHECK(len > 0 && len < sizeof(buf));
	machine();
	CHECK_EQ(deliver(), -1);            /* the default table has no GSI 30 */
	OK(kvm_restore_vm(vm, buf, len));
	CHECK_EQ(deliver(), VECTOR);        /* the saved table routes it to the MSI */
	run_until_out(0x66);
	end_vm(vm);

	int split = vm_with_memory(1 << 20);
	struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
	OK(kvm_enable_cap(split, &cap));
	OK(kvm_create_vcpu(split, 0));
	OK(kvm_set_gsi_routing(split, &table.h));
	size_t slen = save(split);
	OK(kvm_detach_vcpu());
	int plain = vm_with_memory(1 << 20);
	OK(kvm_create_vcpu(plain, 0));
	CHECK_ERR(kvm_restore_vm(plain, buf, slen), ENXIO);
	end_vm(plain);
	OK(kvm_destroy_vm(split));
	return 0;
}

int main(int argc, char **argv)
{
	require_kvm();
	deadline(30);
	if (argc == 3 && strcmp(argv[1], "--restore") == 0)
		return restore(argv[2]);

	machine();
	CHECK_EQ(deliver(), -1);            /* no route for GSI 30 yet: still halted */
	OK(kvm_set_gsi_routing(vm, &table.h));
	CHECK_EQ(deliver(), VECTOR);
	run_until_out(0x66);

	/* Refused: the hatch (libkvm keeps the table), unreadable tables, too many entries;
	 * the table in force stays. */
	CHECK_ERR(kvm_vm_ioctl(vm, KVM_SET_GSI_ROUTING, &table), EINVAL);
	CHECK_ERR(kvm_set_gsi_routing(vm, (const struct kvm_irq_routing *)8), EFAULT);
	uint8_t *pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(pages != MAP_FAILED);
	CHECK(mprotect(pages + 4096, 4096, PROT_NONE) == 0);
	struct kvm_irq_routing *edge = (struct kvm_irq_routing *)(pages + 4096 - sizeof(*edge));
	edge->nr = 1;                       /* its one entry is in the inaccessible page */
	edge->flags = 0;
	CHECK_ERR(kvm_set_gsi_routing(vm, edge), EFAULT);
	CHECK(munmap(pages, 8192) == 0);
	struct kvm_irq_routing many = { .nr = 5000 };
	CHECK_ERR(kvm_set_gsi_routing(vm, &many), EINVAL);
	CHECK_EQ(deliver(), VECTOR);
	run_until_out(0x66);

	/* Saved, and restored by a fresh process (this test, exec'd). */
	size_t len = save(vm);
	char path[] = "/tmp/libkvm-gsi-routing-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, buf, len) == (ssize_t)len);
	close(fd);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(argv[0], argv[0], "--restore", path, (char *)NULL);
		_exit(127);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	unlink(path);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	end_vm(vm);
	return 0;
}
