#!/usr/bin/perl
# Normalise the stdout of `kboot init --dry-run` so two runs with the same inputs compare byte for
# byte: only what is random or time-dependent per run is replaced, the same way for every binary.
#   usage: normalize_dryrun.pl ROOT < stdout > normalised
#   - the --root directory          -> <root>
#   - PEM bodies (certificates, public keys; private keys are redacted by kboot already) -> <pem>
#   - *-data: base64 in kubeconfigs (embedded certificates)                         -> <base64>
#   - sha256:<hex> CA pins                                                            -> sha256:<hash>
#   - generated bootstrap tokens (id.secret, bootstrap-token-ID, token-id/token-secret) and the
#     token Secret's expiration (now + ttl)                                           -> <token> ...
# A file whose content changed here (or holds a redacted private key) gets "<n> bytes" in its header line; every other file keeps
# its exact size.
use strict;
use warnings;
my $root = shift // "";
local $/;
my $in = <STDIN>;
$in =~ s/\Q$root\E/<root>/g if $root ne "";

sub norm {
  my ($s) = @_;
  $s =~ s/(-----BEGIN ([A-Z0-9 ]+)-----\n).*?(-----END \2-----)/$1<pem>\n$3/gs;
  $s =~ s/^(\s*[\w.-]+-data:\s*)[A-Za-z0-9+\/]{40,}={0,2}$/$1<base64>/gm;
  $s =~ s/sha256:[0-9a-f]{64}/sha256:<hash>/g;
  $s =~ s/\b[a-z0-9]{6}\.[a-z0-9]{16}\b/<token>/g;
  $s =~ s/bootstrap-token-[a-z0-9]{6}\b/bootstrap-token-<id>/g;
  $s =~ s/^(\s*(?:token-id|token-secret|expiration):\s*)\S+$/$1<token-field>/gm;
  return $s;
}

# split into blocks at the dry run's file headers ("--- /path (mode 0644, 123 bytes)")
my @parts = split /^(?=--- \S)/m, $in;
my $out = "";
for my $p (@parts) {
  if ($p =~ /\A(--- \S+ \(mode [0-7]+, )(\d+)( bytes\)\n)(.*)\z/s) {
    my ($h1, $n, $h2, $body) = ($1, $2, $3, $4);
    my $nb = norm($body);
    # a redacted private key keeps the size of the random key it hides
    my $random = $nb ne $body || $body =~ /<private key>/;
    $out .= $h1 . ($random ? "<n>" : $n) . $h2 . $nb;
  } else {
    $out .= norm($p);
  }
}
print $out;
