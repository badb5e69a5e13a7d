from svbench.cli import main

main()
