package sqlstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
)

func TestIsDeadlock(t *testing.T) {
	deadlock := &mysql.MySQLError{Number: mysqlDeadlock, Message: "Deadlock found when trying to get lock"}
	assert.True(t, isDeadlock(deadlock))
	assert.True(t, isDeadlock(fmt.Errorf("storing: %w", deadlock)), "wrapped")
	assert.False(t, isDeadlock(&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}))
	assert.False(t, isDeadlock(errors.New("Error 1213")))
	assert.False(t, isDeadlock(nil))
}
