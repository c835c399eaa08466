//go:build !unix

package topology

import "time"

// processCPU is unknown here: the cpu-ms metric reads 0.
func processCPU() time.Duration { return 0 }
