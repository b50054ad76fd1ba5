/**
 * Sequencing of the two agents, independent of gRPC and of the terminal: each operation
 * takes the two agent interfaces and an event listener, and returns a result object that
 * the commands render. The order is the safety property:
 *   up:   connect both → VM Up (handshake awaited) → Mac Up
 *         (the VM Up's Outcome says what it applied: the server endpoints the Mac pins)
 *   down: Mac Down → VM Down (the Mac stops sending into the VM before the tunnel goes)
 * A failed up rolls back, in reverse order, only what this run changed.
 */
export * from './steps';
export * from './connect';
export * from './up';
export * from './down';
export * from './plan';
export * from './portal-probe';
