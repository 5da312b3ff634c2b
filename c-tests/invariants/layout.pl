#!/usr/bin/perl
# Helper of c-tests/invariants/layout-32-64.sh. Writes a C program that, compiled for x86-64 and run,
# prints C11 static assertions pinning the x86-64 layout of everything the public
# prototypes of libkvm.h reach: sizeof, _Alignof and the offset of every member of every
# struct and union named in a prototype or defined by libkvm.h (and of the named structs
# and unions those contain, recursively; members of anonymous ones are reached through
# their parent, like C does), and sizeof of every parameter and return type, or of the
# pointee for pointer parameters. Compiled with -m32, the assertions prove the i386 ABI
# agrees.
#
#   layout.pl ABIXML PROTOTYPES EXCEPTIONS > printer.c
# ABIXML: abidw output (with locations) for a probe object of the x86-64 build that has one
# variable of each root type; PROTOTYPES: gcc -aux-info lines of include/libkvm.h;
# EXCEPTIONS: lines "param FUNCTION:N reason" (N: parameter number, 0 the return type) or
# "layout struct NAME MEMBER reason" (MEMBER: a member path and everything under it, or *
# for the whole type) for what may differ.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use AbiTypes;

my ($xml, $protos, $exc_file) = @ARGV;

# ---- the type graph of the ABI XML ----
my ($types, $order) = AbiTypes::read($xml);
my %type = %$types;
my %by_name;
for my $id (@$order) {
	my $t = $type{$id};
	$by_name{"$t->{kind} $t->{name}"} //= $id unless $t->{anon};
}
sub resolve { my $id = shift; $id = $type{$id}{to} while $type{$id} && $type{$id}{kind} eq 'alias'; $id }
sub bits_of { my $t = $type{resolve(shift)}; $t && $t->{bits} && $t->{bits} =~ /^\d+$/ ? $t->{bits} : undef }

# ---- the prototypes ----
my (%exception, %member_exc, @protos, %roots);
open(my $fh, '<', $exc_file) or die "$exc_file: $!\n";
while (<$fh>) {
	if (/^param (\S+:\d+)\s+(.*)$/) { $exception{$1} = $2; }
	elsif (/^layout ((?:struct|union) \w+) (\S+)\s+(.*)$/) { $member_exc{$1}{$2} = $3; }
	elsif (/\S/) { die "$exc_file: cannot read: $_"; }
}
# The reason a member (or, for path '', the type's size and alignment) may differ, if any.
sub member_exception {
	my ($t, $path) = @_;
	my $e = $member_exc{$t} or return;
	return $e->{'*'} if $e->{'*'};
	for my $p (keys %$e) { return $e->{$p} if $path eq $p || index($path, "$p.") == 0 || index($path, "$p\[") == 0; }
	return;
}
open($fh, '<', $protos) or die "$protos: $!\n";
while (<$fh>) {
	next unless /\*\/ extern (.*?)\b([A-Za-z_]\w*) \((.*)\);$/;
	my ($ret, $name, $params) = ($1, $2, $3);
	my @p = ('');
	my $depth = 0;
	for my $c (split //, $params) {
		$depth++ if $c eq '(';
		$depth-- if $c eq ')';
		if ($c eq ',' && $depth == 0) { push @p, ''; } else { $p[-1] .= $c; }
	}
	s/^\s+|\s+$//g for @p, $ret;
	@p = () if "@p" eq 'void';
	push @protos, [$name, $ret, @p];
	my $all = "$ret @p";
	$roots{"$1 $2"} = 1 while $all =~ /\b(struct|union) ([A-Za-z_]\w*)/g;
}
# Structs and unions libkvm.h defines itself are roots too.
for my $id (keys %type) {
	my $t = $type{$id};
	$roots{"$t->{kind} $t->{name}"} = 1 if $t->{kind} =~ /^(struct|union)$/ && !$t->{anon} && $t->{file} =~ m{(^|/)include/libkvm\.h$};
}

# ---- walk the structs ----
my (@lines, %done);
sub emit { push @lines, @_ }
sub cstr { my $s = shift; $s =~ s/(["\\])/\\$1/g; $s }
my @queue = sort keys %roots;
while (my $root = shift @queue) {
	next if $done{$root}++;
	my $id = $by_name{$root};
	if (!defined $id) { emit(qq{\tmissing("$root");}); next; }
	my $own = $type{$id}{file} =~ m{(^|/)include/libkvm\.h$} ? 1 : 0;
	if (my $why = member_exception($root, '')) {
		emit(qq{\tallowed_layout("$root", "sizeof", sizeof($root), "${\ cstr($why)}");});
	} else {
		emit(qq{\tlayout("$root", sizeof($root), _Alignof($root), $own);});
	}
	my @work = ([$id, '']);
	while (my $w = shift @work) {
		my ($tid, $prefix) = @$w;
		my $t = $type{$tid};
		my @m = @{$t->{members}};
		for my $i (0 .. $#m) {
			my $m = $m[$i];
			my $path = $m->{name} eq '' ? $prefix =~ s/\.$//r : "$prefix$m->{name}";
			# Bit-fields have no offsetof: a member is one if it starts inside a byte or
			# the next member starts before its type would end (structs only).
			my $tb = bits_of($m->{type});
			my $next = $t->{kind} eq 'struct' && $i < $#m ? $m[$i + 1]{off} : undef;
			my $bitfield = $m->{off} % 8 || (defined $tb && defined $next && $next - $m->{off} < $tb && $next > $m->{off});
			if ($bitfield) { emit(qq{\tbitfield("$root", "${path}");}); next; }
			if ($m->{name} ne '') {
				if (my $why = member_exception($root, $path)) {
					emit(qq{\tallowed_layout("$root", "offsetof($path)", offsetof($root, $path), "${\ cstr($why)}");});
				} else {
					emit(qq{\tmember("$root", "$path", offsetof($root, $path));});
				}
			}
			# Into the member's type: named structs and unions are roots of their own,
			# anonymous ones are walked from here; arrays through their first element.
			my $mt = resolve($m->{type});
			my $sub = $path eq '' ? '' : "$path.";
			while ($type{$mt} && $type{$mt}{kind} eq 'array') { $mt = resolve($type{$mt}{to}); $sub = "$path\[0]."; $path .= '[0]'; }
			my $mtt = $type{$mt} or next;
			next unless $mtt->{kind} =~ /^(struct|union)$/;
			if ($mtt->{anon}) { push @work, [$mt, $m->{name} eq '' ? $prefix : $sub]; }
			else { push @queue, "$mtt->{kind} $mtt->{name}"; }
		}
	}
}

# ---- parameter and return types ----
for my $p (@protos) {
	my ($fn, @types) = @$p;
	for my $i (0 .. $#types) {
		my $t = $types[$i];
		my $what = $i == 0 ? "return type ($t)" : "parameter $i ($t)";
		next if $t eq 'void' || $t eq '...';
		if (my $why = $exception{"$fn:$i"}) {
			emit(qq{\tallowed("$fn", "${\ cstr($what)}", sizeof($t), "${\ cstr($why)}");});
			next;
		}
		if ($t =~ /\(\*\)/) { next; }           # function pointer: a pointer, nothing to size
		if ($t =~ /^(.*?)\s*\*\s*(const\s*)?$/) {  # pointer: the pointee crosses the boundary
			my $pointee = $1;
			next if $pointee =~ /^(const\s+)?void$/ || $pointee =~ /\*/;
			next if $pointee =~ /\b(struct|union)\b/;   # laid out above
			emit(qq{\tscalar("$fn", "${\ cstr("pointee of $what")}", "${\ cstr($pointee)}", sizeof($pointee));});
			next;
		}
		next if $t =~ /\b(struct|union)\b/;
		emit(qq{\tscalar("$fn", "${\ cstr($what)}", "${\ cstr($t)}", sizeof($t));});
	}
}

print <<'C';
/* Generated by c-tests/invariants/layout.pl. Run without arguments it prints C11 static assertions of
 * this build's layout; with "values", the same facts as "what<TAB>value" lines. */
#include <libkvm.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int values, bad;

static void fact(const char *what, size_t v, const char *expr, const char *alt)
{
	if (values)
		printf("%s\t%zu\n", what, v);
	else if (alt)
		printf("_Static_assert(%s == %zu || %s, \"%s is %zu on x86-64\");\n", expr, v, alt, what, v);
	else
		printf("_Static_assert(%s == %zu, \"%s is %zu on x86-64\");\n", expr, v, what, v);
}

static __attribute__((unused)) void layout(const char *t, size_t size, size_t align, int own)
{
	char what[512], expr[512], alt[512];
	snprintf(what, sizeof(what), "%s: sizeof", t);
	snprintf(expr, sizeof(expr), "sizeof(%s)", t);
	fact(what, size, expr, NULL);
	/* The i386 psABI aligns 8-byte scalars to 4 inside structs. With every size and offset
	 * equal that changes no byte the kernel reads, so the kernel's structs may show it;
	 * libkvm's own structs may not (they are identical, by the contract). */
	snprintf(what, sizeof(what), "%s: _Alignof", t);
	snprintf(expr, sizeof(expr), "_Alignof(%s)", t);
	snprintf(alt, sizeof(alt), "_Alignof(%s) == 4", t);
	fact(what, align, expr, own || align != 8 ? NULL : alt);
}

static __attribute__((unused)) void member(const char *t, const char *m, size_t off)
{
	char what[512], expr[512];
	snprintf(what, sizeof(what), "%s: offsetof(%s)", t, m);
	snprintf(expr, sizeof(expr), "offsetof(%s, %s)", t, m);
	fact(what, off, expr, NULL);
}

static __attribute__((unused)) void scalar(const char *fn, const char *what, const char *t, size_t size)
{
	char w[512], expr[512];
	snprintf(w, sizeof(w), "%s: sizeof %s", fn, what);
	snprintf(expr, sizeof(expr), "sizeof(%s)", t);
	fact(w, size, expr, NULL);
}

static __attribute__((unused)) void bitfield(const char *t, const char *m)
{
	if (!values)
		printf("/* bit-field: %s: %s (no offsetof; covered by its neighbours and the size) */\n", t, m);
}

static __attribute__((unused)) void allowed(const char *fn, const char *what, size_t size, const char *why)
{
	if (values)
		printf("%s: sizeof %s\t%zu\tallowed: %s\n", fn, what, size, why);
	else
		printf("/* allowed: %s: sizeof %s is %zu on x86-64: %s */\n", fn, what, size, why);
}

static __attribute__((unused)) void allowed_layout(const char *t, const char *what, size_t v, const char *why)
{
	if (values)
		printf("%s: %s\t%zu\tallowed: %s\n", t, what, v, why);
	else
		printf("/* allowed: %s: %s is %zu on x86-64: %s */\n", t, what, v, why);
}

static __attribute__((unused)) void missing(const char *t)
{
	fprintf(stderr, "%s: no layout in the debug info\n", t);
	bad = 1;
}

int main(int argc, char **argv)
{
	values = argc > 1 && strcmp(argv[1], "values") == 0;
	if (!values)
		printf("/* Generated by c-tests/invariants/layout-32-64.sh from the x86-64 build. */\n#include <libkvm.h>\n#include <stddef.h>\n");
C
print "$_\n" for @lines;
print "\treturn bad;\n}\n";
