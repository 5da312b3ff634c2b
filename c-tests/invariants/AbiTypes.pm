# The type graph of an abidw XML file, shared by layout.pl and struct-paths.pl.
#
#   my ($type, $order) = AbiTypes::read($xml, bindgen => 1);
#
# $type: id -> { kind => 'struct' | 'union', name, anon, file, bits, members => [{ off,
# name, type }] }, or { kind => 'alias' | 'array', to => id } (typedefs and qualified
# types; arrays, entered through their first element), or { kind => 'scalar', bits }.
# $order: the struct and union ids in the order the file defines them (a name may be
# defined once per compilation unit; callers take the first).
# With bindgen => 1, Rust's spellings are read as C's: `..__bindgen_ty_N` types are
# anonymous, `__bindgen_anon_N` members unnamed, and a member named after a Rust keyword
# (`type_`) has its C name.
package AbiTypes;
use strict;
use warnings;

sub read {
	my ($xml, %opt) = @_;
	my (%type, @order, $cur);
	open(my $fh, '<', $xml) or die "$xml: $!\n";
	while (<$fh>) {
		my %a = /(\S+?)='([^']*)'/g;
		if (/^\s*<(class-decl|union-decl) / && !$a{'is-declaration-only'}) {
			my $kind = $1 eq 'union-decl' ? 'union' : 'struct';
			my $anon = ($a{'is-anonymous'} // '') eq 'yes';
			$anon ||= $a{name} =~ /__bindgen_ty_\d+$/ if $opt{bindgen};
			$cur = { kind => $kind, name => $a{name},
				 anon => $anon, file => $a{filepath} // '', bits => $a{'size-in-bits'},
				 members => [] };
			$type{$a{id}} = $cur;
			push @order, $a{id};
			$cur = undef if m{/>\s*$};
		} elsif (/^\s*<\/(class-decl|union-decl)>/) {
			$cur = undef;
		} elsif ($cur && /^\s*<data-member /) {
			push @{$cur->{members}}, { off => $a{'layout-offset-in-bits'} // 0 };
		} elsif ($cur && /^\s*<var-decl / && @{$cur->{members}} && !exists $cur->{members}[-1]{name}) {
			my $n = $a{name};
			if ($opt{bindgen}) {
				$n = '' if $n =~ /^__bindgen_anon_\d+$/;
				$n =~ s/^(type|match|ref|box|fn|loop|move|mod|use|impl|trait|crate|self|super|dyn)_$/$1/;
			}
			@{$cur->{members}[-1]}{qw(name type)} = ($n, $a{'type-id'});
		} elsif (/^\s*<(typedef-decl|qualified-type-def|array-type-def) /) {
			my $kind = $1 eq 'array-type-def' ? 'array' : 'alias';
			$type{$a{id}} = { kind => $kind, to => $a{'type-id'} };
		} elsif (/^\s*<(type-decl|pointer-type-def|enum-decl|function-type) /) {
			$type{$a{id}} = { kind => 'scalar', bits => $a{'size-in-bits'} // 0 } if defined $a{id};
		}
	}
	return (\%type, \@order);
}

1;
