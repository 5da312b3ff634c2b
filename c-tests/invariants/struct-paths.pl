#!/usr/bin/perl
# Helper of c-tests/invariants/rust-c-structs.sh. Reads an abidw XML file and prints, for every named
# struct or union whose name matches the pattern given, its size and the absolute bit
# offset of every member path, one fact per line:
#   kvm_run <TAB> sizeof <TAB> 18816
#   kvm_run <TAB> io.port <TAB> 288
# Members of anonymous structs and unions are reached through their parent, as in C. Rust
# (bindgen) spells those `__bindgen_anon_N` members of `..__bindgen_ty_N` types; both
# spellings give the same paths, and a member named after a Rust keyword (`type_`) is
# given its C name. Arrays are entered through their first element.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use AbiTypes;

my ($xml, $pattern) = @ARGV;
my ($types, $order) = AbiTypes::read($xml, bindgen => 1);
my %type = %$types;
my @named = grep { !$type{$_}{anon} && $type{$_}{name} =~ /$pattern/ } @$order;

my %seen;
for my $id (@named) {
	my $t = $type{$id};
	next if $seen{$t->{name}}++;
	print "$t->{name}\tsizeof\t$t->{bits}\n";
	my @work = ([$id, '', 0]);
	while (my $w = shift @work) {
		my ($tid, $prefix, $base) = @$w;
		for my $m (@{$type{$tid}{members}}) {
			my $off = $base + $m->{off};
			my $path = $m->{name} eq '' ? $prefix =~ s/\.$//r : "$prefix$m->{name}";
			print "$t->{name}\t$path\t$off\n" if $m->{name} ne '';
			my $mt = $m->{type};
			my $sub = $m->{name} eq '' ? $prefix : "$path.";
			while ($type{$mt} && $type{$mt}{kind} =~ /^(alias|array)$/) {
				if ($type{$mt}{kind} eq 'array') { $sub = "$path\[0]."; $path .= '[0]'; }
				$mt = $type{$mt}{to};
			}
			push @work, [$mt, $sub, $off] if $type{$mt} && $type{$mt}{anon};
		}
	}
}
