/** gRPC metadata the controller sets on the mac-agent's Describe: the VM's address, to find the vnic facing it. */
export const VM_ADDRESS_METADATA = 'wgctl-vm-address';
