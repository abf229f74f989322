// Package group coordinates several tagstream instances.
package group
