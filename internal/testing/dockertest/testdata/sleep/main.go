// Command sleep runs until it is sent SIGTERM or SIGINT: the process of a
// test container. As PID 1 of a container it must handle the signal
// itself, or the kernel ignores it. With the argument -exit it exits at
// once (an init container that has nothing to do).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-exit" {
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
