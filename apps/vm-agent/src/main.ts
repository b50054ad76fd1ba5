// Entry point of the vm-agent bundle; everything heavy is loaded inside the command actions.
import { main } from './cli';

void main();
