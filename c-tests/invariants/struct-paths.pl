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

my ($xml, $pattern) = @ARGV;
my (%type, @named, $cur);
open(my $fh, '<', $xml) or die "$xml: $!\n";
while (<$fh>) {
	my %a = /(\S+?)='([^']*)'/g;
	if (/^\s*<(class-decl|union-decl) / && !$a{'is-declaration-only'}) {
		my $anon = ($a{'is-anonymous'} // '') eq 'yes' || $a{name} =~ /__bindgen_ty_\d+$/;
		$cur = { name => $a{name}, anon => $anon, bits => $a{'size-in-bits'}, members => [] };
		$type{$a{id}} = $cur;
		push @named, $a{id} if !$anon && $a{name} =~ /$pattern/;
		$cur = undef if m{/>\s*$};
	} elsif (/^\s*<\/(class-decl|union-decl)>/) {
		$cur = undef;
	} elsif ($cur && /^\s*<data-member /) {
		push @{$cur->{members}}, { off => $a{'layout-offset-in-bits'} // 0 };
	} elsif ($cur && /^\s*<var-decl / && @{$cur->{members}} && !exists $cur->{members}[-1]{name}) {
		my $n = $a{name} =~ /^__bindgen_anon_\d+$/ ? '' : $a{name};
		$n =~ s/^(type|match|ref|box|fn|loop|move|mod|use|impl|trait|crate|self|super|dyn)_$/$1/;  # Rust keywords
		@{$cur->{members}[-1]}{qw(name type)} = ($n, $a{'type-id'});
	} elsif (/^\s*<(typedef-decl|qualified-type-def|array-type-def) /) {
		$type{$a{id}} = { alias => $a{'type-id'}, array => $1 eq 'array-type-def' };
	}
}

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
			while ($type{$mt} && exists $type{$mt}{alias}) {
				if ($type{$mt}{array}) { $sub = "$path\[0]."; $path .= '[0]'; }
				$mt = $type{$mt}{alias};
			}
			push @work, [$mt, $sub, $off] if $type{$mt} && $type{$mt}{anon};
		}
	}
}
