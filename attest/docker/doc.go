// Package docker is the docker workload attestor: it describes a process
// that runs in a Docker container by the container's labels, image and
// chosen environment variables, as the Docker daemon reports them.
//
// It finds the container from the process's cgroups, asks the daemon's
// Engine API (on its unix socket) about it, and checks that the process is
// in the container's own cgroup, where the container's first process is,
// rather than in one made below it (see [Attestor]). A process in no
// container, or in a container this daemon does not run, gets no
// selectors; the unix attestor still describes it, through
// [attest.Combine].
//
// # Usage
//
//	a, err := docker.New(docker.Config{
//		SocketPath: "/var/run/docker.sock",
//		AllowedEnv: []string{"APP_ROLE"},
//	})
//	...
//	sels, err := a.Attest(ctx, w) // w from the Workload API's endpoint
//	// docker:label:app:web, docker:image_id:registry.example/web:1.4,
//	// docker:image_id:sha256:..., docker:env:APP_ROLE=frontend
//
// The agent runs on the host, sharing its PID namespace and cgroup view
// with the daemon (an agent in a container needs the host's PID namespace
// and the daemon's socket mounted).
package docker
