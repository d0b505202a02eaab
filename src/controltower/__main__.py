from controltower.cli.main import run

run()
