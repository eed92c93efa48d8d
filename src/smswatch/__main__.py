from smswatch.cli import main

main()
