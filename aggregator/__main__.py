from aggregator.cli.commands import main

main(prog_name="aggregator")
