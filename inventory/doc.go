// Package inventory reads a Docker daemon: containers with their full
// configuration, the images they use, named volumes, bind mounts, networks and
// compose projects. It talks to the daemon through [API], a narrow interface
// over github.com/moby/moby/client, so tests can feed it recorded inspect JSON.
//
// It only reads. It never changes an object in any daemon; planning what to do
// with what it found is package migrate's job.
package inventory
