// A minimal Go client of the routewatch API, built from the generated
// code: it asks an agent for its information, then takes one snapshot and
// prints how many routes, nexthop objects and rules it holds.
//
//	routewatch-go-client 127.0.0.1:50051
//
// Plaintext only (an agent started with --insecure); a real client would
// pass TLS credentials to grpc.Dial instead.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"

	routewatchv1 "routewatch/gen/go/routewatch/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: routewatch-go-client HOST:PORT")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, os.Args[1], grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := routewatchv1.NewRouteWatchClient(conn)

	info, err := client.GetInfo(ctx, &routewatchv1.GetInfoRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "GetInfo:", err)
		os.Exit(1)
	}
	fmt.Printf("host %s version %s stream %s\n",
		info.GetHostname(), info.GetAgentVersion(), info.GetCursor().GetStreamId())

	stream, err := client.Subscribe(ctx, &routewatchv1.SubscribeRequest{Snapshot: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "Subscribe:", err)
		os.Exit(1)
	}
	routes, nexthops, rules, synced := 0, 0, 0, false
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "Subscribe:", err)
			os.Exit(1)
		}
		for _, event := range response.GetEvents() {
			if event.GetSync() != nil {
				synced = true
			}
			change := event.GetChange()
			switch {
			case change == nil:
			case change.GetRoute() != nil:
				routes++
			case change.GetNexthop() != nil:
				nexthops++
			case change.GetRule() != nil:
				rules++
			}
		}
	}
	if !synced {
		fmt.Fprintln(os.Stderr, "the snapshot ended without its Sync marker")
		os.Exit(1)
	}
	fmt.Printf("routes %d nexthops %d rules %d\n", routes, nexthops, rules)
}
