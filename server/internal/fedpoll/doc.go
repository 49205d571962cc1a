// Package fedpoll polls the bundle endpoints of an issuing server's
// federation relationships: those of its configuration and those kept in
// its datastore, each by a watcher that fetches the foreign trust domain's
// bundle (over the https_spiffe or https_web profile, at the bundle's
// refresh hint, bounded in time and in the fetches under way at once) and
// stores it when it changed, from where it reaches the server's agents. It
// also gives the admin API its management of the stored relationships.
//
// The SPIFFE Federation standard's rules are cited as "Fed rule N".
package fedpoll
