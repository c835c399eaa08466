// Package jaegerpb is the home of glassmesh's own Go stubs for Jaeger's
// protos (in its subpackages); generate.sh records how they were made.
package jaegerpb

//go:generate ./generate.sh
