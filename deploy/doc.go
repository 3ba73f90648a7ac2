// Package deploy holds no code: it is the operator's folder (example
// configs, the fleet template, upgrade and first-install guides). Its tests
// check that every example config passes `kaiten check-config`, that the
// example documents every key, and that the fleet template renders.
package deploy
