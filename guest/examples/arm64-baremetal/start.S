/*
 * Entry of the bare-metal arm64 example: an arm64 Linux Image header (what Xen's toolstack
 * loads: libxenguest's zimage64 loader puts it at RAM base + text_offset and enters at its
 * first byte, EL1, MMU and data cache off, x0 = the device tree), a stack, and guest_main().
 */
	.section .head, "ax"
	.global _head
_head:
	b	_start			/* code0 */
	.long	0			/* code1 */
	.quad	0			/* text_offset: loaded at RAM base */
	.quad	_end - _head		/* image_size */
	.quad	0x2			/* flags: little-endian, 4 KiB pages */
	.quad	0, 0, 0			/* res2-res4 */
	.ascii	"ARM\x64"		/* magic */
	.long	0			/* res5 */

	.text
	.global _start
_start:
	msr	daifset, #0xf		/* no interrupts are taken here */
	adr	x1, stack_top
	mov	sp, x1
	adr	x1, vectors		/* any synchronous exception: report it and power off */
	msr	vbar_el1, x1
	isb
	bl	guest_main
1:	wfi				/* guest_main shuts the domain down; not reached */
	b	1b

	/* 16 entries of 0x80 bytes, the table 2 KiB aligned (ARMv8 VBAR_EL1). */
	.balign	2048
vectors:
	.rept	16
	.balign	128
	mrs	x0, esr_el1
	mrs	x1, far_el1
	adr	x2, stack_top		/* a fresh stack: the old one may be the fault */
	mov	sp, x2
	b	guest_exception
	.endr

	/* The stack is in the image (zeros in the file): nothing to clear before C runs. */
	.section .data
	.balign	16
stack:
	.space	16384
stack_top:
