/* SMP bring-up: the boot vcpu starts every other vcpu with INIT/SIPI through its local
 * APIC; each vcpu checks that its local APIC ID, CPUID leaf 1 EBX[31:24] and the x2APIC
 * ID of leaf 0xB agree, and reports in. Expectations: cpus=<n>. */
#include "lib.h"

#define MAX 16
static volatile unsigned arrived, seen_mask;
static volatile unsigned bad_ids;

static unsigned cpuid_ids_match(unsigned id)
{
	uint32_t r[4];
	cpuid(0, 0, r);
	uint32_t max_leaf = r[0];
	cpuid(1, 0, r);
	unsigned ok = (r[1] >> 24) == id;
	if (max_leaf >= 0xb) {
		cpuid(0xb, 0, r);
		ok &= r[3] == id;
	}
	return ok;
}

void ap_main(unsigned id)
{
	unsigned ok = cpuid_ids_match(id) && id < MAX;
	kprintf("vcpu with APIC ID %u is up\n", id);
	if (!ok)
		__atomic_fetch_add(&bad_ids, 1, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_or(&seen_mask, 1u << id, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
}

int kmain(uint32_t magic, const struct mb_info *mbi);
int kmain(uint32_t magic, const struct mb_info *mbi)
{
	(void)magic;
	const char *cmdline = (const char *)(uintptr_t)mbi->cmdline;
	unsigned cpus = arg_u32(cmdline, "cpus", 1);
	CHECK(apic_id() == 0, "boot vcpu has APIC ID 0");
	CHECK(cpuid_ids_match(0), "boot vcpu: CPUID leaf 1 and 0xB give APIC ID 0");
	uint32_t r[4];
	cpuid(1, 0, r);
	kprintf("CPUID.1: ebx 0x%x ecx 0x%x edx 0x%x\n", r[1], r[2], r[3]);
	CHECK(((r[1] >> 16) & 0xff) == cpus, "CPUID.1 EBX[23:16]: %u logical processors", cpus);
	outw(0x510, 5);
	unsigned fw_cpus = inb(0x511) | (unsigned)inb(0x511) << 8;
	CHECK(fw_cpus == cpus, "fw_cfg: %u vcpus", fw_cpus);

	unsigned ids[MAX];
	for (unsigned i = 1; i < cpus && i < MAX; i++)
		ids[i - 1] = i;
	start_aps(ids, cpus - 1);
	/* bounded by kvmrun -t if an AP never arrives */
	while (arrived < cpus - 1)
		cpu_relax();
	CHECK(bad_ids == 0, "every AP's CPUID matches its local APIC ID");
	CHECK(seen_mask == ((1u << cpus) - 1) - 1, "APs 1-%u all reported (mask 0x%x)", cpus - 1, seen_mask);
	return finish();
}
