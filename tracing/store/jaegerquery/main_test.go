package jaegerquery_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind
// (servers, idle connections).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
