//go:build !unix

package front

import "net"

// watchHangUp does not watch elsewhere than on unix: a slow request's
// context then ends only with its handler.
func watchHangUp(net.Conn, func()) (stop func()) { return func() {} }
