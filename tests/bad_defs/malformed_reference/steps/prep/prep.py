print('prep')
