#!/usr/bin/perl
# Reads a GNU ld version script (src/libkvm.map) and prints one line per node and symbol:
#   node LIBKVM_1.0 -            (a node and the node it inherits, "-" for none)
#   sym kvm_run LIBKVM_1.0       (a global symbol and its node)
# in the order of the file. Exits 1, naming the problem on stderr, when the script breaks
# libkvm's rules: nodes are LIBKVM_<major>.<minor>, the first has `local: *;` and no parent,
# every later one inherits the one right before it and has no `local:`, the minors count
# up by one, and no symbol is listed twice or is a wildcard.
use strict;
use warnings;

my $file = shift // 'src/libkvm.map';
open(my $fh, '<', $file) or die "$file: $!\n";
my $text = do { local $/; <$fh> };
$text =~ s{/\*.*?\*/}{}gs;
$text =~ s{#[^\n]*}{}g;

my (@out, @err, %seen, $prev);
my $pos = 0;
while ($text =~ /\G\s*([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*([A-Za-z_][\w.]*)?\s*;/gcs) {
	my ($node, $body, $parent) = ($1, $2, $3);
	$pos = pos($text);
	push @err, "node $node: not LIBKVM_<major>.<minor>" unless $node =~ /^LIBKVM_\d+\.\d+$/;
	if (!defined $prev) {
		push @err, "first node $node must not inherit ($parent)" if defined $parent;
		push @err, "first node $node must end with `local: *;`" unless $body =~ /local\s*:\s*\*\s*;\s*$/s;
	} else {
		push @err, "node $node must inherit the node before it, $prev" unless ($parent // '') eq $prev;
		push @err, "node $node: `local:` belongs in the first node only" if $body =~ /local\s*:/;
		my ($pm, $pn) = $prev =~ /(\d+)\.(\d+)$/;
		my ($m, $n) = $node =~ /(\d+)\.(\d+)$/;
		push @err, "node $node does not follow $prev (next minor: LIBKVM_$pm." . ($pn + 1) . ")"
			if defined $m && defined $pm && !($m == $pm && $n == $pn + 1);
	}
	push @out, "node $node " . ($parent // '-');
	(my $globals = $body) =~ s/local\s*:.*//s;
	$globals =~ s/global\s*:\s*//;
	for my $sym (grep { length } map { s/^\s+|\s+$//gr } split /;/, $globals) {
		if ($sym !~ /^[A-Za-z_]\w*$/) { push @err, "node $node: '$sym' is not a plain symbol name"; next; }
		push @err, "$sym is listed twice ($seen{$sym} and $node)" if $seen{$sym};
		$seen{$sym} //= $node;
		push @out, "sym $sym $node";
	}
	$prev = $node;
}
push @err, "cannot parse $file after offset $pos" if $text =~ /\G\s*\S/gcs;
push @err, "$file has no node" unless defined $prev;
if (@err) { print STDERR "$file: $_\n" for @err; exit 1; }
print "$_\n" for @out;
