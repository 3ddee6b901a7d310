// Package watch keeps an eye on the operator's own TLS servers: the watch
// list, the baseline each server's first successful probe records, the
// comparison of every later probe with it, and the alerts that follow.
//
// The daemon re-probes every watched server on its own schedule (Entry.Every,
// else Policy.Every), independent of the sensor's logs, through the same
// scheduler and budgets as the probes the logs cause (Runner, Prober). A
// watched server is allow-listed in scope by the act of watching it, for
// these probes: the operator's scope.deny still wins; scope.allow,
// scope.ports and the built-in deny list of non-public ranges do not apply
// (connections to it in the logs follow the scope as before).
//
// Each successful probe is compared with the baseline (Compare): JARM, the
// ATSF answers one by one (which of the ten ClientHellos got another
// answer, named as in docs/ATSF.md), the leaf certificate and the HTTP
// Server header. What can only be compared when both sides have it is
// compared then only: a baseline imported from the config with a JARM alone
// is completed by the first probe that agrees with it.
//
// Alerts (Observe):
//
//   - watch_drift: the stack changed. One alert per new set of fingerprints,
//     saying exactly what changed, once a second probe (made within
//     ConfirmAfter) answered the same way: a probe that ran while the
//     server restarted mixes two configurations and is not alerted. It is
//     not repeated while the server keeps answering the same way, and the
//     baseline stays until `stackprint watch accept` takes the current
//     fingerprints.
//   - watch_cert_rotated: the certificate was re-issued with the same key and
//     issuer (a rotation, not a stack change); the baseline follows it.
//   - watch_unreachable: Policy.FailAfter probes in a row failed (refused,
//     timeout, not TLS, …); never a drift. Cleared by the next success.
//   - watch_cert_expiry: the certificate ends within Policy.ExpiryWarn
//     (once per certificate).
//   - watch_reachable: the first successful probe after watch_unreachable
//     (Policy.ReachableAgain): how long the server was down, how many
//     probes failed, and whether it answers with its baseline. Never a
//     drift: the answers are compared as after any probe, so a server back
//     with another stack raises watch_drift too, when confirmed.
package watch
